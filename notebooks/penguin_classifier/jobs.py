"""The job's tasks for a local run: the task graph of ``databricks.yml``, with local variables.

On a workspace the job reads and writes a Unity Catalog volume and downloads the lab's CSV;
locally the same tasks run with two variables changed: ``lab_dir`` (``./lab``) and
``source_url`` (the shipped ``data/penguins.csv``). ``--var`` overrides any variable.
"""

from __future__ import annotations

from .bundle import job_tasks, load_bundle
from .runner import Task
from .runtime import shipped_data


def local_variables() -> dict[str, str]:
    return {"lab_dir": "lab", "source_url": str(shipped_data())}


def local_tasks(variables: dict[str, str] | None = None, target: str = "dev") -> list[Task]:
    """The bundle's tasks in dependency order, parameters resolved for a local run."""
    return job_tasks(load_bundle(), {**local_variables(), **(variables or {})}, target)

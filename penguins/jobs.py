"""The job's tasks for a local run: the task graph of ``databricks.yml``, with local values.

On a workspace the job reads and writes a Unity Catalog volume and downloads the lab's CSV;
locally the same tasks run with two values changed: the job parameter ``lab_dir`` (``lab``) and
the variable ``source_url`` (the shipped ``data/penguins.csv``). The volume's name needs the
workspace user, so the local run never resolves it.
"""

from __future__ import annotations

from penguin_classifier.errors import PenguinInputError
from penguin_classifier.runtime import shipped_data

from .bundle import job_tasks, load_bundle
from .runner import Task


def local_parameters() -> dict[str, str]:
    return {"lab_dir": "lab"}


def local_variables() -> dict[str, str]:
    return {"source_url": str(shipped_data())}


def local_tasks(
    variables: dict[str, str] | None = None,
    target: str = "dev",
    parameters: dict[str, str] | None = None,
) -> list[Task]:
    """The bundle's tasks in dependency order, parameters resolved for a local run."""
    return job_tasks(
        load_bundle(),
        {**local_variables(), **(variables or {})},
        {**local_parameters(), **(parameters or {})},
        target,
    )


def only_tasks(tasks: list[Task], names: list[str]) -> list[Task]:
    """The tasks ``--only`` names, in the job's order."""
    known = [task.key for task in tasks]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise PenguinInputError(
            f"--only {','.join(unknown)}: not a task of the job (tasks: {', '.join(known)})"
        )
    return [task for task in tasks if task.key in names]

"""A job's tasks for a local run: the task graph of ``databricks.yml``, with local values.

On a workspace the jobs read and write a Unity Catalog volume, track runs in the bundle's MLflow
experiment, use its registered model and download the lab's CSV; locally the same tasks run with
the job parameters that need a workspace given local values (``LOCAL_PARAMETERS``) and the
variable ``source_url`` set to the shipped ``data/penguins.csv``. Those defaults need the
workspace user, so the local run never resolves them.
"""

from __future__ import annotations

from penguin_classifier.errors import PenguinInputError
from penguin_classifier.runtime import local_run_id, shipped_data

from .bundle import JOB, job_parameters, job_spec, job_tasks, load_bundle, target_config
from .runner import Task

# Each is set only for a job that declares it (job_tasks refuses other names).
LOCAL_PARAMETERS = {
    "lab_dir": "lab",
    "experiment": "penguin_classifier",
    "model_name": "penguin_classifier",
    "model": "models:/penguin_classifier@champion",
    "endpoint_name": "predict-penguin",
}


def local_parameters(spec: dict) -> dict[str, str]:
    """The local values of the job parameters that the job ``spec`` declares; ``job_run_id``
    (``{{job.run_id}}`` on Databricks) is a new id for each local run of the job."""
    values = {**LOCAL_PARAMETERS, "job_run_id": local_run_id()}
    declared = job_parameters(spec)
    return {name: value for name, value in values.items() if name in declared}


def local_variables() -> dict[str, str]:
    return {"source_url": str(shipped_data())}


def local_tasks(
    variables: dict[str, str] | None = None,
    target: str = "dev",
    parameters: dict[str, str] | None = None,
    job: str = JOB,
) -> list[Task]:
    """The job's tasks in dependency order, parameters resolved for a local run."""
    config = load_bundle()
    spec = job_spec(target_config(config, target), job)
    tasks = job_tasks(
        config,
        {**local_variables(), **(variables or {})},
        {**local_parameters(spec), **(parameters or {})},
        target,
        job,
    )
    for task in tasks:
        for name, value in task.params.items():
            if "{{" in value:
                raise PenguinInputError(
                    f"{job}.tasks.{task.key}: parameter {name} is {value!r}, a dynamic value "
                    "reference that only a Databricks job run fills in; give it a value"
                )
    return tasks


def only_tasks(tasks: list[Task], names: list[str]) -> list[Task]:
    """The tasks ``--only`` names, in the job's order."""
    known = [task.key for task in tasks]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise PenguinInputError(
            f"--only {','.join(unknown)}: not a task of the job (tasks: {', '.join(known)})"
        )
    return [task for task in tasks if task.key in names]


def from_tasks(tasks: list[Task], key: str) -> list[Task]:
    """The task ``--from`` names and every later task of the job, in its order."""
    known = [task.key for task in tasks]
    if key not in known:
        raise PenguinInputError(f"--from {key}: not a task of the job (tasks: {', '.join(known)})")
    return tasks[known.index(key) :]


def rerun_keys(tasks: list[Task], ran: list[Task], failed: str, notebook: str) -> list[str]:
    """The tasks to run when task ``failed`` of the job's ``tasks`` refused the folder that
    ``notebook`` (``03_model``) commits as missing or stale: that notebook's task and every task
    up to ``failed``, then the tasks of this run (``ran``) after it, in the job's order. Empty
    when no task of the job before ``failed`` runs ``notebook``."""
    keys = [task.key for task in tasks]
    stems = [task.notebook.stem for task in tasks]
    end = keys.index(failed)
    if notebook not in stems[: end + 1]:
        return []
    later = [task.key for task in ran if keys.index(task.key) > end]
    return keys[stems.index(notebook) : end + 1] + later

"""The job's tasks for a local run: the stage notebooks in order."""

from __future__ import annotations

from .runner import Task
from .runtime import project_root


def local_tasks() -> list[Task]:
    """One task per stage notebook ``notebooks/NN_stage.py``, in file-name order."""
    notebooks = sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.py"))
    return [Task(path.stem.split("_", 1)[1], path) for path in notebooks]

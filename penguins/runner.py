"""The local job runner: the stage notebooks, unchanged, in one process on one SparkSession.

Each notebook runs as Databricks would run it as a job task: its globals hold ``spark``,
``dbutils`` (widgets filled from the task's parameters) and ``display``.
"""

from __future__ import annotations

import ast
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from penguin_classifier.errors import PenguinInputError, PenguinRunError
from penguin_classifier.layout import Lab
from penguin_classifier.runtime import LazySpark, LocalDbutils, local_display

from .lab_lock import taken


@dataclass
class Task:
    key: str
    notebook: Path
    params: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)


@dataclass
class TaskResult:
    key: str
    seconds: float
    task_values: dict


def notebook_widgets(path: Path) -> dict[str, str]:
    """``{name: default}`` of every widget a notebook declares: ``dbutils.widgets.text(name,
    default, ...)`` or ``dbutils.widgets.dropdown(name, default, choices, ...)``."""
    widgets = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("text", "dropdown")
            and ast.unparse(node.func.value) == "dbutils.widgets"
            and len(node.args) >= 2
        ):
            widgets[ast.literal_eval(node.args[0])] = ast.literal_eval(node.args[1])
    return widgets


def check_overrides(tasks: list[Task], overrides: dict[str, str]) -> None:
    """Every ``--param`` must name a widget of at least one stage."""
    known = set().union(*(notebook_widgets(t.notebook) for t in tasks))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PenguinInputError(
            f"no stage has a parameter named {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )


def run_notebook(path: Path, widget_values: dict[str, str], spark) -> LocalDbutils:
    """Execute a notebook file unchanged with Databricks-like globals; return its ``dbutils``."""
    dbutils = LocalDbutils(widget_values)
    namespace = {
        "__name__": "__notebook__",
        "__file__": str(path),
        "spark": spark,
        "dbutils": dbutils,
        "display": local_display,
    }
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return dbutils


def run_tasks(tasks: list[Task], overrides: dict[str, str], spark=None, log=print):
    """Run ``tasks`` in order, holding their lab folder; ``overrides`` replace each task's
    parameter of the same name."""
    check_overrides(tasks, overrides)
    spark = spark or LazySpark()
    labs = {values["lab_dir"] for t in tasks if "lab_dir" in (values := {**t.params, **overrides})}
    with ExitStack() as held:
        for lab_dir in sorted(labs):
            held.enter_context(taken(Lab(lab_dir)))  # one run a lab folder
        return run_in_order(tasks, overrides, spark, log)


def run_in_order(tasks: list[Task], overrides: dict[str, str], spark, log) -> list[TaskResult]:
    results = []
    for task in tasks:
        log(f"\n===== {task.key}: {task.notebook.name} =====")
        start = time.perf_counter()
        try:
            dbutils = run_notebook(task.notebook, {**task.params, **overrides}, spark)
        except PenguinInputError as err:
            raise PenguinInputError(f"{task.key}: {err}") from None
        except PenguinRunError as err:
            raise PenguinRunError(f"{task.key}: {err}") from None
        seconds = time.perf_counter() - start
        log(f"----- {task.key} done in {seconds:.1f} s")
        results.append(TaskResult(task.key, seconds, dict(dbutils.jobs.taskValues.values)))
    return results

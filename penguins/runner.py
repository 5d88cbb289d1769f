"""The local job runner: the stage notebooks, unchanged, in one process on one SparkSession.

Each notebook runs as Databricks would run it as a job task: its globals hold ``spark``,
``dbutils`` (widgets filled from the task's parameters) and ``display``.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from penguin_classifier.errors import PenguinInputError, PenguinRunError
from penguin_classifier.lab import Lab
from penguin_classifier.runtime import LazySpark, LocalDbutils, NotebookExit, local_display

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
    cells: list[tuple[str, float]] = field(default_factory=list)  # (title, seconds) each


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


CELL_SEPARATOR = "\n# COMMAND ----------\n"


@dataclass
class Cell:
    title: str  # its ``# DBTITLE 1,...``, else its first line
    first_line: int  # in the notebook file, from 1
    source: str


def notebook_cells(path: Path) -> list[Cell]:
    """The code cells of a Databricks source-format notebook (Markdown cells left out)."""
    cells, line = [], 1
    for source in path.read_text().split(CELL_SEPARATOR):
        lines = [x for x in source.splitlines() if x.strip()]
        code = [x for x in lines if not x.startswith(("# MAGIC", "# Databricks notebook source"))]
        if code:
            titles = [x.split(",", 1)[1] for x in lines if x.startswith("# DBTITLE 1,")]
            cells.append(Cell(titles[0] if titles else code[0][:60], line, source))
        line += source.count("\n") + CELL_SEPARATOR.count("\n")
    return cells


def run_notebook(
    path: Path, widget_values: dict[str, str], spark, cell_times: list | None = None
) -> LocalDbutils:
    """Execute a notebook file unchanged, cell by cell, with Databricks-like globals; return
    its ``dbutils``. ``cell_times`` gets ``(title, seconds)`` for each cell that ran."""
    dbutils = LocalDbutils(widget_values)
    namespace = {
        "__name__": "__notebook__",
        "__file__": str(path),
        "spark": spark,
        "dbutils": dbutils,
        "display": local_display,
    }
    for cell in notebook_cells(path):
        # Padded so that a traceback names the notebook's own line numbers.
        code = compile("\n" * (cell.first_line - 1) + cell.source, str(path), "exec")
        start = time.perf_counter()
        try:
            exec(code, namespace)
        except NotebookExit:  # dbutils.notebook.exit(...): the notebook ends, successfully
            break
        finally:
            if cell_times is not None:
                cell_times.append((cell.title, time.perf_counter() - start))
    return dbutils


# A stage that refuses a missing or stale input folder ends its message with the notebooks to
# run, first the one that commits that folder: "...: run 03_model, 04_train again" or "...: run
# 02_prepare first" (records.run_again).
NOTEBOOKS_TO_RUN = re.compile(r": run (\d\d_\w+)[^:]*$")

# ``rerun(failed_task_key, notebook)``: the command that runs that notebook's task again, and
# what has to follow it; None if there is none.
Rerun = Callable[[str, str], str | None]


def run_tasks(
    tasks: list[Task], overrides: dict[str, str], spark=None, log=print, rerun: Rerun | None = None
):
    """Run ``tasks`` in order, holding their lab folder; ``overrides`` replace each task's
    parameter of the same name. A refusal that names the notebooks to run ends with
    ``run: <command>`` instead, the command ``rerun`` gives (:func:`with_command`)."""
    check_overrides(tasks, overrides)
    spark = spark or LazySpark()
    labs = {values["lab_dir"] for t in tasks if "lab_dir" in (values := {**t.params, **overrides})}
    with ExitStack() as held:
        for lab_dir in sorted(labs):
            held.enter_context(taken(Lab(lab_dir)))  # one run a lab folder
        return run_in_order(tasks, overrides, spark, log, rerun)


def with_command(message: str, key: str, rerun: Rerun | None) -> str:
    """``message`` (task ``key``'s refusal) with its ending ``run <notebook>[, ...] again|first``
    replaced by ``run: <command>``, the command ``rerun(key, notebook)`` gives, if any."""
    named = NOTEBOOKS_TO_RUN.search(message)
    command = rerun(key, named[1]) if named and rerun else None
    return f"{message[: named.start()]}: run: {command}" if command else message


def run_in_order(
    tasks: list[Task], overrides: dict[str, str], spark, log, rerun: Rerun | None = None
) -> list[TaskResult]:
    results = []
    for task in tasks:
        log(f"\n===== {task.key}: {task.notebook.name} =====")
        start, cells = time.perf_counter(), []
        try:
            dbutils = run_notebook(task.notebook, {**task.params, **overrides}, spark, cells)
        except PenguinInputError as err:
            raise PenguinInputError(
                f"{task.key}: {with_command(str(err), task.key, rerun)}"
            ) from None
        except PenguinRunError as err:
            raise PenguinRunError(f"{task.key}: {err}") from None
        seconds = time.perf_counter() - start
        log(f"----- {task.key} done in {seconds:.1f} s")  # its cells' times: in its TaskResult
        values = dict(dbutils.jobs.taskValues.values)
        results.append(TaskResult(task.key, seconds, values, cells))
    return results

"""``spark``, ``dbutils`` and ``display`` for the notebooks, wherever they run.

On Databricks the notebook's own globals are used. Elsewhere a local SparkSession and small
stand-ins: widgets return their default, or the value passed in (by the job runner, or as
``--name value`` on the command line of ``python notebooks/02_prepare.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def local_spark(app_name: str = "penguins"):
    """A small local SparkSession: 2 cores, no UI, few shuffle partitions, quiet logs."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class LazySpark:
    """A local SparkSession started on first use, so a stage that needs no Spark starts none."""

    def __init__(self, factory=local_spark):
        self._factory = factory
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = self._factory()
        return self._session

    def __getattr__(self, name):
        return getattr(self.session, name)


class LocalWidgets:
    """The part of ``dbutils.widgets`` the notebooks use."""

    def __init__(self, values: dict[str, str] | None = None):
        self._values = dict(values or {})
        self._defaults: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._defaults[name] = str(defaultValue)

    def get(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        if name in self._defaults:
            return self._defaults[name]
        raise ValueError(f"no widget named {name!r}")

    def getAll(self) -> dict[str, str]:  # noqa: N802 (the Databricks name)
        return {name: self.get(name) for name in self._defaults}

    def removeAll(self) -> None:  # noqa: N802
        self._defaults.clear()

    @property
    def names(self) -> list[str]:
        return list(self._defaults)


class LocalTaskValues:
    """``dbutils.jobs.taskValues``: values a task hands to later tasks of the same run."""

    def __init__(self):
        self.values: dict[str, object] = {}

    def set(self, key: str, value) -> None:
        self.values[key] = value

    def get(self, taskKey: str, key: str, default=None, debugValue=None):  # noqa: N803
        return self.values.get(key, default if debugValue is None else debugValue)


class LocalDbutils:
    """A stand-in for Databricks' ``dbutils`` with widgets and task values."""

    def __init__(self, widget_values: dict[str, str] | None = None):
        self.widgets = LocalWidgets(widget_values)
        self.jobs = type("Jobs", (), {})()
        self.jobs.taskValues = LocalTaskValues()


def local_display(obj) -> None:
    """Print what Databricks' ``display`` would render."""
    if hasattr(obj, "show") and hasattr(obj, "schema"):  # Spark DataFrame
        obj.show(20, truncate=False)
    elif hasattr(obj, "savefig"):  # matplotlib figure
        print(f"[figure: {getattr(obj, 'penguins_path', 'not saved')}]")
    else:
        print(obj)


def argv_widget_values(argv: list[str]) -> dict[str, str]:
    """``--lab_dir x --epochs=5`` → ``{"lab_dir": "x", "epochs": "5"}``."""
    values, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise SystemExit(f"unexpected argument {arg!r}: pass widgets as --name value")
        if "=" in arg:
            name, value = arg[2:].split("=", 1)
        elif i + 1 < len(argv):
            name, value = arg[2:], argv[i + 1]
            i += 1
        else:
            raise SystemExit(f"widget {arg} needs a value")
        values[name.replace("-", "_")] = value
        i += 1
    return values


def notebook_runtime(namespace: dict):
    """Return ``(spark, dbutils, display)`` for the notebook whose ``globals()`` is ``namespace``.

    Databricks (and the local job runner) put all three into the notebook's globals; a notebook run
    as a plain script gets a local SparkSession and stand-ins reading widgets from ``sys.argv``.
    """
    if all(name in namespace for name in ("spark", "dbutils", "display")):
        return namespace["spark"], namespace["dbutils"], namespace["display"]
    values = {}
    if namespace.get("__name__") == "__main__":
        values = argv_widget_values(sys.argv[1:])
        sys.excepthook = one_line_input_errors
    return LazySpark(), LocalDbutils(values), local_display


def one_line_input_errors(kind, error, tb) -> None:
    """For notebooks run as scripts: bad input (exit 2) or a failed run (exit 1) is one line."""
    from .errors import PenguinInputError, PenguinRunError

    if issubclass(kind, (PenguinInputError, PenguinRunError)):
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2 if issubclass(kind, PenguinInputError) else 1)
    sys.__excepthook__(kind, error, tb)


def project_root() -> Path:
    """The folder holding ``notebooks/``, ``data/`` and ``databricks.yml``."""
    return Path(__file__).resolve().parents[2]


def shipped_data() -> Path:
    return project_root() / "data" / "penguins.csv"

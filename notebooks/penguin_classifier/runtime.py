"""``spark``, ``dbutils`` and ``display`` for the notebooks, wherever they run.

On Databricks the notebook's own globals are used. Elsewhere a local SparkSession and small
stand-ins: widgets return the value passed in (``penguins run`` passes the job's parameters), or
their default.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path


def local_run_id() -> str:
    """A new id for a local run, in place of Databricks' ``{{job.run_id}}``."""
    return f"local-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def spark_classes() -> Path:
    """The class-data archive that local Spark's JVM starts from: ``make`` builds it once
    (``python -m penguins.spark_classes``), in the Python environment holding pyspark."""
    return Path(sys.prefix) / "spark-classes.jsa"


def class_record(archive: Path) -> Path:
    """The record ``python -m penguins.spark_classes`` writes beside ``archive``, after it: its
    size, mtime (ns) and sha256."""
    return archive.with_name(f"{archive.name}.json")


def class_sharing(archive: Path) -> str:
    """Java options that map ``archive``'s classes (Java's class-data sharing) instead of
    loading and verifying them from Spark's jars: a session starts about 2 s sooner and its
    first job 1 s (2-core machine). None, quietly, without the archive (naming a missing one
    would turn off the JDK's own) or when it is not the one its record describes: a JVM that
    maps a truncated archive dies of SIGBUS. The size is checked at every start; the sha256
    (0.13 s for 191 MB) only when the mtime is not the recorded one (a copied archive). The JVM
    itself ignores, quietly, one built by another Java or Spark."""
    from .records import sha256

    try:
        record = json.loads(class_record(archive).read_text())
        size, mtime_ns, digest = record["size"], record["mtime_ns"], record["sha256"]
        found = archive.stat()
        if found.st_size != size or (found.st_mtime_ns != mtime_ns and sha256(archive) != digest):
            return ""
    except (OSError, ValueError, TypeError, KeyError):  # no archive, no record or not one
        return ""
    return f"-XX:SharedArchiveFile={archive} -Xlog:cds=off -Xlog:cds+dynamic=off"


# Local Spark's log: errors only, from the JVM's start (no NativeCodeLoader WARN), without the
# banner Spark prints when it uses its own defaults ("Using Spark's default log4j profile"). A
# Python process counts as a shell: Spark gives the root logger the level of its gateway's
# logger, WARN unless configured, and says so ("Setting default log level to WARN").
LOG4J2 = """\
rootLogger.level = error
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


def local_spark(app_name: str = "penguins", java_options: str | None = None):
    """A small local SparkSession: 2 cores, no UI, few shuffle partitions, only errors logged
    (:data:`LOG4J2`); its JVM gets ``java_options`` too, by default :func:`class_sharing` of
    :func:`spark_classes`.

    Its warehouse (where a table would go) and its log configuration are temporary, removed
    when the process ends: never ``./spark-warehouse`` in the current folder.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if java_options is None:
        java_options = class_sharing(spark_classes())
    warehouse = tempfile.mkdtemp(prefix="penguins-spark-warehouse-")
    atexit.register(shutil.rmtree, warehouse, ignore_errors=True)
    handle, log_config = tempfile.mkstemp(prefix="penguins-spark-log4j2-", suffix=".properties")
    with os.fdopen(handle, "w") as file:
        file.write(LOG4J2)
    atexit.register(Path(log_config).unlink, missing_ok=True)
    java_options = f"-Dlog4j2.configurationFile={log_config} {java_options}".strip()
    spark = (
        SparkSession.builder.config("spark.driver.extraJavaOptions", java_options)
        .master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", warehouse)
        .getOrCreate()
    )
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

    def dropdown(self, name: str, defaultValue: str, choices, label: str | None = None) -> None:  # noqa: N803
        self.text(name, defaultValue, label)

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


class NotebookExit(Exception):  # noqa: N818 (what dbutils.notebook.exit does, by name)
    """``dbutils.notebook.exit(value)``: the notebook ends here, successfully, with ``value``."""

    def __init__(self, value: str = ""):
        super().__init__(value)
        self.value = value


class LocalNotebook:
    """``dbutils.notebook``: ``exit(value)`` ends the notebook (the runner stops at that cell)."""

    def exit(self, value: str = "") -> None:
        raise NotebookExit(str(value))


class LocalDbutils:
    """A stand-in for Databricks' ``dbutils`` with widgets, task values and ``notebook.exit``."""

    def __init__(self, widget_values: dict[str, str] | None = None):
        self.widgets = LocalWidgets(widget_values)
        self.jobs = type("Jobs", (), {})()
        self.jobs.taskValues = LocalTaskValues()
        self.notebook = LocalNotebook()


def local_display(obj) -> None:
    """Print what Databricks' ``display`` would render."""
    if hasattr(obj, "show") and hasattr(obj, "schema"):  # Spark DataFrame
        obj.show(20, truncate=False)
    elif hasattr(obj, "savefig"):  # matplotlib figure: its title stands in for the picture
        titles = [ax.get_title() for ax in obj.get_axes() if ax.get_title()]
        print(f"[figure: {', '.join(titles) or 'untitled'}]")
    else:
        print(obj)


def notebook_runtime(namespace: dict):
    """Return ``(spark, dbutils, display)`` for the notebook whose ``globals()`` is ``namespace``.

    Databricks (and ``penguins run``) put all three into the notebook's globals; anywhere else a
    local SparkSession and stand-ins whose widgets keep their defaults.
    """
    if all(name in namespace for name in ("spark", "dbutils", "display")):
        return namespace["spark"], namespace["dbutils"], namespace["display"]
    return LazySpark(), LocalDbutils(), local_display


def project_root() -> Path:
    """The folder holding ``notebooks/``, ``penguins/``, ``data/`` and ``databricks.yml``."""
    return Path(__file__).resolve().parents[2]


def shipped_data() -> Path:
    return project_root() / "data" / "penguins.csv"

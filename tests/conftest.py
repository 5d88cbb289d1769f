"""Shared fixtures: one local SparkSession and one fully run lab folder for the whole session.

Use ``spark`` for Spark DataFrame tests; use ``lab`` (read-only!) for tests that need the outputs
of every stage at the default parameters; copy it (``tmp_lab``) before changing anything.
Every folder a test gets (``tmp_path``, and so every lab folder) follows a Unity Catalog volume's
rules, in the test process and in every process it starts: see ``volume/volume_rules.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from penguin_classifier import tracking
from penguin_classifier.lab import Lab
from penguin_classifier.runtime import local_spark, project_root

from penguins.jobs import local_tasks
from penguins.runner import run_tasks

ROOT = project_root()
DATA = ROOT / "data" / "penguins.csv"
VOLUME_RULES = Path(__file__).parent / "volume"

sys.path.insert(0, str(VOLUME_RULES))
import volume_rules  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def volume(tmp_path_factory) -> Path:
    """The folder holding every ``tmp_path``, with the volume's rules (before Spark starts, so
    that its Python workers and the distributed ranks get them too)."""
    root = tmp_path_factory.getbasetemp()
    paths = [str(VOLUME_RULES), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ[volume_rules.VARIABLE] = str(root)
    volume_rules.install(str(root))
    return root


@pytest.fixture(scope="session", autouse=True)
def mlflow_store():
    """Every MLflow run of the session in one SQLite store on local disk, outside the
    volume-ruled test folders (SQLite needs random writes), as a user would set it."""
    with tempfile.TemporaryDirectory(prefix="penguins-mlflow-") as folder:
        database = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", database)
            patch.setenv("MLFLOW_REGISTRY_URI", database)
            yield database


@pytest.fixture
def local_disk():
    """A folder on plain local disk, outside the volume-ruled test folders: links and renames
    work there, as on a user's machine."""
    with tempfile.TemporaryDirectory(prefix="penguins-test-disk-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A ``local[2]`` SparkSession without UI, stopped after the last test."""
    session = local_spark("penguins-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lab_run(spark, tmp_path_factory):
    """The whole job, every stage notebook run unchanged in job order, on a fresh lab folder with
    the volume's rules; the task results. Distribution trains 10 epochs instead of 100."""
    lab = Lab(tmp_path_factory.mktemp("lab"))
    tasks = local_tasks()
    next(t for t in tasks if t.key == "distribute").params["epochs"] = "10"
    results = run_tasks(tasks, {"lab_dir": str(lab.root)}, spark, log=lambda *_: None)
    return lab, results


@pytest.fixture(scope="session")
def lab(lab_run) -> Lab:
    return lab_run[0]


@pytest.fixture
def record(lab) -> dict:
    """What 04, 05 and 06 of the session's job run recorded of MLflow (their ``mlflow.json``,
    joined), with MLflow pointed at the store 04 names."""
    tracking.reopen(lab, "trained")
    return tracking.recorded(lab)


@pytest.fixture
def tmp_lab(lab, tmp_path) -> Lab:
    """A private copy of the session's lab folder, free to change."""
    copy = tmp_path / "lab"
    shutil.copytree(lab.root, copy)
    return Lab(copy)

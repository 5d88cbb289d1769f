"""Shared fixtures: one local SparkSession and one fully run lab folder for the whole session.

Use ``spark`` for Spark DataFrame tests; use ``lab`` (read-only!) for tests that need the outputs
of every stage at the default parameters; copy it (``tmp_lab``) before changing anything.
"""

from __future__ import annotations

import shutil

import pytest
from penguin_classifier.jobs import local_tasks
from penguin_classifier.layout import Lab
from penguin_classifier.runner import run_tasks
from penguin_classifier.runtime import local_spark, project_root

ROOT = project_root()
DATA = ROOT / "data" / "penguins.csv"


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A ``local[2]`` SparkSession without UI, stopped after the last test."""
    session = local_spark("penguins-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def lab_run(spark, tmp_path_factory):
    """Every stage notebook run unchanged, in job order, on a fresh lab folder; the task results."""
    lab = Lab(tmp_path_factory.mktemp("lab"))
    tasks = [t for t in local_tasks() if t.key != "distribute"]
    results = run_tasks(tasks, {"lab_dir": str(lab.root)}, spark, log=lambda *_: None)
    return lab, results


@pytest.fixture(scope="session")
def lab(lab_run) -> Lab:
    return lab_run[0]


@pytest.fixture
def tmp_lab(lab, tmp_path) -> Lab:
    """A private copy of the session's lab folder, free to change."""
    copy = tmp_path / "lab"
    shutil.copytree(lab.root, copy)
    return Lab(copy)

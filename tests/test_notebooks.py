"""The stage notebooks: Databricks source format, thin, and runnable unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from penguin_classifier import params
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.records import STAGES
from penguin_classifier.runtime import LocalDbutils, project_root

from penguins import bundle
from penguins.cli import main
from penguins.jobs import local_tasks
from penguins.runner import notebook_widgets

ROOT = project_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_notebooks_are_found():
    # A glob that matches nothing would make the tests below pass vacuously.
    assert [p.name for p in NOTEBOOKS] == [
        "01_ingest.py",
        "02_prepare.py",
        "03_model.py",
        "04_train.py",
        "05_evaluate.py",
        "06_distribute.py",
        "07_score.py",  # batch scoring with the registered model (tests/test_scoring.py)
        "08_serve.py",  # the champion behind an endpoint (tests/test_serving.py)
    ]
    assert [t.key for t in local_tasks()] == [
        "ingest", "prepare", "model", "train", "evaluate", "distribute", "serve"
    ]  # fmt: skip


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_databricks_source_format(path):
    text = path.read_text()
    cells = text.split("\n# COMMAND ----------\n")
    assert text.startswith("# Databricks notebook source\n# MAGIC %md\n")
    assert len(cells) >= 4  # banner, widgets, parameters, work
    assert all(line.startswith("# MAGIC") for line in cells[0].splitlines()[1:] if line)
    assert "dbutils.widgets.text" in cells[1]
    widgets = notebook_widgets(path)
    assert "lab_dir" in widgets
    for name in widgets:  # every parameter is described in the banner
        assert f"`{name}`" in cells[0]


def test_every_stage_committed_its_outputs(lab_run):
    lab, results = lab_run
    assert [r.key for r in results] == [
        "ingest", "prepare", "model", "train", "evaluate", "distribute", "serve"
    ]  # fmt: skip
    lab.require(*STAGES)
    values = {k: v for r in results for k, v in r.task_values.items()}
    assert values["raw_rows"] == 344 and values["train_rows"] == 960
    assert values["test_accuracy"] >= 0.97
    assert values["distributed_accuracy"] >= 0.9


@pytest.mark.parametrize(
    ("value", "low", "high", "message"),
    [
        ("0.3", 0.0, 1.0, None),
        ("1e300", 0.0, None, None),  # finite: a rate that large is train's to refuse (04)
        ("nan", 0.0, 1.0, "parameter x: nan is not a finite number above 0.0 and below 1.0"),
        ("inf", 0.0, None, "parameter x: inf is not a finite number above 0.0"),
        ("-inf", None, None, "parameter x: -inf is not a finite number"),
        ("0", 0.0, None, "parameter x: 0 is not a finite number above 0.0"),
        ("1", 0.0, 1.0, "parameter x: 1 is not a finite number above 0.0 and below 1.0"),
        ("fast", 0.0, None, "parameter x: 'fast' is not a number"),
    ],
)
def test_numeric_parameters_are_finite_and_in_range(value, low, high, message):
    dbutils = LocalDbutils({"x": value})
    if message is None:
        assert params.number(dbutils, "x", low, high) == float(value)
    else:
        with pytest.raises(PenguinInputError) as raised:
            params.number(dbutils, "x", low, high)
        assert str(raised.value) == message


@pytest.mark.parametrize("value", ["lab", "", "./lab", "/Workspace/Users/me/lab"])
def test_on_databricks_the_lab_folder_must_be_a_volume(monkeypatch, value):
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    dbutils = LocalDbutils({"lab_dir": value})
    with pytest.raises(PenguinInputError, match="parameter lab_dir") as raised:
        params.lab_dir(dbutils)
    assert "\n" not in str(raised.value)
    volume = "/Volumes/catalog/schema/lab"
    assert params.lab_dir(LocalDbutils({"lab_dir": volume})).root == Path(volume)


def test_a_widget_default_edited_in_a_copy_takes_effect_through_penguins_run(
    spark, tmp_path, monkeypatch, capsys
):
    # A learner's clone with two defaults changed in the notebooks, run as `penguins run` runs
    # the bundle's job there: the widget's default is the one value, the bundle does not fix it.
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "notebooks", clone / "notebooks", ignore=shutil.ignore_patterns("__*"))
    shutil.copytree(ROOT / "resources", clone / "resources")
    shutil.copy(ROOT / "databricks.yml", clone)
    for notebook, old, new in (
        ("02_prepare.py", '"oversample", "4"', '"oversample", "2"'),
        ("03_model.py", '"hidden", "10"', '"hidden", "16"'),
    ):
        path = clone / "notebooks" / notebook
        assert path.read_text().count(old) == 1
        path.write_text(path.read_text().replace(old, new))
    monkeypatch.setattr(bundle, "project_root", lambda: clone)
    lab = tmp_path / "lab"
    assert main(["run", "--only", "ingest,prepare,model", "--lab-dir", str(lab)]) == 0
    out = capsys.readouterr().out
    # 240 training rows, 2 copies each (4 before the edit: 960).
    assert "240 training rows, 480 once oversampled" in out
    assert json.loads((lab / "prepared" / "features.json").read_text())["oversample"] == 2
    # 5·16+16 + 16·16+16 + 16·3+3 = 419 (203 at the shipped hidden size 10).
    assert "\n419 parameters\n" in out
    assert json.loads((lab / "model" / "config.json").read_text())["hidden"] == 16
    # --param still wins over the default: 5·12+12 + 12·12+12 + 12·3+3 = 267.
    assert main(["run", "--only", "model", "--lab-dir", str(lab), "--param", "hidden=12"]) == 0
    assert "\n267 parameters\n" in capsys.readouterr().out

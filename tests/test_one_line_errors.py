"""What the machine, the store or the workspace refuses is one line and exit 2, not a traceback:
an unknown table, an unreadable or missing MLflow store, a model whose files are gone, a folder
denied, a path too long, a malformed ``~/.databrickscfg``."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
from penguin_classifier import registry, tracking

from penguins.cli import main

PREDICT = ["predict", "--island", "Dream", "--culmen-length", "50.4", "--culmen-depth", "15.3"]
PREDICT += ["--flipper-length", "200", "--body-mass", "5000"]
CHAMPION = "models:/penguin_classifier@champion"


def penguins(capsys, *args: str) -> tuple[int, list[str]]:
    """Exit status and stderr's lines of ``penguins ARGS`` in this process."""
    status = main(list(args))
    return status, capsys.readouterr().err.splitlines()


@pytest.fixture
def no_store_set(monkeypatch):
    """No MLFLOW_TRACKING_URI: the store is the local one, ``<lab_dir>/../mlruns/mlflow.db``."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def own_store(monkeypatch):
    """A new store of the test's own, outside the volume-ruled test folders (SQLite needs random
    writes); MLflow back on the session's store afterwards."""
    with tempfile.TemporaryDirectory(prefix="penguins-mlflow-") as folder:
        database = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", database)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", database)
        yield
        mlflow.set_tracking_uri(None)  # then monkeypatch puts the session's variables back
        mlflow.set_registry_uri(None)


@pytest.mark.parametrize(
    ("table", "condition"),
    [
        ("no_such_table", "TABLE_OR_VIEW_NOT_FOUND"),
        # Unity Catalog's three-part name; the local catalog has one-part schemas.
        ("main.default.x", "REQUIRES_SINGLE_PART_NAMESPACE"),
    ],
)
def test_an_unknown_table_to_score_is_one_line(lab, tmp_path, capsys, table, condition):
    args = ["run", "--job", "penguin_scoring", "--lab-dir", str(tmp_path / "lab")]
    status, err = penguins(capsys, *args, "--param", f"input={table}")
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"penguins run: score: input {table}: [{condition}] ")


def test_spark_keeps_its_warehouse_out_of_the_current_folder(spark):
    # Spark's default is ./spark-warehouse, made in whatever folder the command ran from.
    warehouse = Path(urlparse(spark.conf.get("spark.sql.warehouse.dir")).path)
    assert warehouse.name.startswith("penguins-spark-warehouse-")
    assert warehouse.parent == Path(tempfile.gettempdir())


def test_loading_a_model_creates_no_store_where_none_was(no_store_set, tmp_path, capsys):
    status, err = penguins(
        capsys, *PREDICT, "--lab-dir", str(tmp_path / "lab"), "--model-uri", CHAMPION
    )
    database = tmp_path.resolve() / "mlruns" / "mlflow.db"
    assert (status, err) == (
        2,
        [f"penguins predict: no MLflow store at {database}: run penguins run first"],
    )
    assert not (tmp_path / "mlruns").exists()


def sqlite_cut_short() -> bytes:
    """The first 200 bytes of a real SQLite file (a copy cut short)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "whole.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t (x)")
        db.close()
        return path.read_bytes()[:200]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a database\n", "file is not a database"),
        (sqlite_cut_short(), "database disk image is malformed"),
    ],
)
def test_a_corrupt_store_is_one_line_naming_it(no_store_set, tmp_path, capsys, content, reason):
    database = tmp_path.resolve() / "mlruns" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(content)
    status, err = penguins(
        capsys, *PREDICT, "--lab-dir", str(tmp_path / "lab"), "--model-uri", CHAMPION
    )
    assert (status, err) == (
        2,
        [f"penguins predict: MLflow store {database} is unreadable: {reason}"],
    )


def test_a_model_whose_files_are_gone_is_one_line(own_store, tmp_lab, capsys):
    tracking.configure(tmp_lab)  # the test's own store: its model's files are the test's
    with tracking.start_run("04_train"):
        info = registry.log_model(tmp_lab)
    version = registry.register(info.model_uri, accuracy=1.0).version
    location = mlflow.MlflowClient().get_model_version_download_uri("penguin_classifier", version)
    files = Path(urlparse(location).path)
    args = [*PREDICT, "--lab-dir", str(tmp_lab.root), "--model-uri", CHAMPION]
    missing = files / "artifacts" / "penguin_classifier.pt"  # the weights the model carries
    missing.unlink()
    capsys.readouterr()  # what logging and registering it printed
    assert penguins(capsys, *args) == (
        2,
        [f"penguins predict: model {CHAMPION}: No such file or directory: {missing}"],
    )
    shutil.rmtree(files)  # all of them: MLflow says "No such artifact: ''"
    assert penguins(capsys, *args) == (
        2,
        [f"penguins predict: model {CHAMPION}: its files are gone from {location}"],
    )


@pytest.mark.parametrize("where", ["lab", "store"])
def test_a_folder_denied_is_one_line_naming_the_path(
    no_store_set, tmp_lab, monkeypatch, capsys, where
):
    # `chmod 000 <folder>` as a user sees it: every stat below it denied. Simulated, since the
    # tests may run as root, whom chmod does not stop.
    folder = tmp_lab.root if where == "lab" else tmp_lab.root.resolve().parent / "mlruns"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(f"{folder}{os.sep}"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    model = ["--model-uri", CHAMPION] if where == "store" else []
    status, err = penguins(capsys, *PREDICT, "--lab-dir", str(tmp_lab.root), *model)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"penguins predict: Permission denied: {folder}{os.sep}")


@pytest.mark.parametrize("command", [PREDICT, ["run", "--only", "ingest"]])
def test_a_path_too_long_is_one_line_naming_it(tmp_path, capsys, command):
    lab_dir = tmp_path / ("a" * 256)  # a name longer than a file system allows (255 bytes)
    status, err = penguins(capsys, *command, "--lab-dir", str(lab_dir))
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"penguins {command[0]}: File name too long: {lab_dir}")


def test_a_malformed_databrickscfg_is_one_line(monkeypatch, tmp_path, capsys):
    for name in [k for k in os.environ if k.startswith(("DATABRICKS_", "ARM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".databrickscfg").write_text("host = https://example.cloud.databricks.com\n")
    status, err = penguins(capsys, "submit")
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(
        "penguins submit: malformed Databricks config file: File contains no section headers."
    )
    assert str(tmp_path / ".databrickscfg") in err[0]

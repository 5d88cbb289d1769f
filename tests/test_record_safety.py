"""A record is data from outside until checked: anyone who can write a lab folder can write one.
A record that names a path outside its folder, or a field of another type than the project
writes, is refused in one line before anything is touched; a folder holding a file its record
does not list is refused by readers; a lab folder copied away from its MLflow store never logs
into the original's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import mlflow
import pytest
from penguin_classifier import tracking
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.handover import handover
from penguin_classifier.lab import Lab
from penguin_classifier.records import MANIFEST, STAGES, run_again
from test_foreign_files import fingerprint, refused

from penguins.cli import main, program

DIGEST = "0" * 64


def rewrite(path: Path, data) -> None:
    """Replace a record as a user could: a delete and a new file (the volume's rules)."""
    path.unlink()
    path.write_text(json.dumps(data))


def versions(record: dict) -> int:
    client = mlflow.MlflowClient(record["tracking_uri"], record["registry_uri"])
    return len(client.search_model_versions(f"name = '{record['registered_model']}'"))


@pytest.fixture
def victim(tmp_lab) -> Path:
    """A user's file beside the lab folder."""
    path = tmp_lab.root.parent / "victim.txt"
    path.write_text("years of work")
    return path


@pytest.mark.parametrize(
    "name",
    ["../../victim.txt", "<victim>", "..", "../..", "./penguins.csv", "raw//x", ""],
    ids=["relative", "absolute", "the lab", "the lab's parent", "dot", "empty part", "empty"],
)
def test_a_record_naming_a_path_outside_its_folder_is_refused(tmp_lab, victim, capsys, name):
    # raw/'s record with every file it lists, and one more outside raw/ (on 7eca39d the next
    # run of 01_ingest deleted it: the victim, the whole lab, the lab's parent folder).
    name = str(victim) if name == "<victim>" else name
    path = tmp_lab.folder("raw") / MANIFEST
    record = json.loads(path.read_text())
    record["files"][name] = {"size": victim.stat().st_size, "sha256": DIGEST}
    rewrite(path, record)
    before = fingerprint(tmp_lab.root.parent)  # the lab and the victim beside it
    err = refused(capsys, "run", "--only", "ingest", "--lab-dir", str(tmp_lab.root))
    assert err == (
        f"penguins run: ingest: 01_ingest will not replace {tmp_lab.folder('raw')}: {path} is "
        f"not a record of this project (file {name!r} is not a path inside its folder)\n"
    )
    # A reader refuses it too: 02_prepare reads raw/.
    err = refused(capsys, "run", "--only", "prepare", "--lab-dir", str(tmp_lab.root))
    assert err.startswith(f"penguins run: prepare: {path} is not a record of this project")
    rerun = f"run: {program('penguins')} run --lab-dir {tmp_lab.root} --only ingest,prepare"
    assert err.endswith(f"inside its folder): {rerun}\n")
    assert fingerprint(tmp_lab.root.parent) == before


def test_a_scoring_record_naming_a_path_outside_its_folder_is_refused(tmp_lab, victim, capsys):
    # An output folder holding a scoring "commit" that lists the user's file: on 7eca39d the
    # scoring job scored, then deleted it when it replaced the folder.
    output = tmp_lab.root.parent / "scored"
    output.mkdir()
    record = {"stage": "07_score", "files": {"../victim.txt": {"size": 13, "sha256": DIGEST}}}
    (output / MANIFEST).write_text(json.dumps(record))
    before = fingerprint(tmp_lab.root.parent)
    args = ["run", "--job", "penguin_scoring", "--lab-dir", str(tmp_lab.root)]
    err = refused(capsys, *args, "--param", f"output={output}")
    assert err == (
        f"penguins run: score: 07_score will not replace {output}: {output / MANIFEST} is not a "
        "record of this project (file '../victim.txt' is not a path inside its folder)\n"
    )
    assert fingerprint(tmp_lab.root.parent) == before


# A committed record of raw/ changed so: each is refused, with the problem named.
BAD_RECORDS = [
    (lambda r: [r], "not a JSON object"),
    (lambda r: {**r, "stage": 1}, "stage is not a name"),
    (lambda r: {**r, "stage": "01_ingest\nok"}, "stage is not a name"),  # one line, always
    (lambda r: {**r, "pending": "no"}, "pending is not true or false"),
    (lambda r: {**r, "parameters": ["source"]}, "parameters is not an object"),
    (lambda r: {**r, "files": list(r["files"])}, "files is not an object"),
    (lambda r: {k: v for k, v in r.items() if k != "files"}, "files is not an object"),
    (lambda r: {**r, "files": {"penguins.csv": {"size": "9", "sha256": DIGEST}}}, "no size"),
    (lambda r: {**r, "files": {"penguins.csv": {"size": True, "sha256": DIGEST}}}, "no size"),
    (lambda r: {**r, "files": {"penguins.csv": {"size": 9, "sha256": "x"}}}, "no size"),
    (lambda r: {**r, "files": {"penguins.csv": None}}, "no size and sha256"),
    (lambda r: {**r, "inputs": {"../..": DIGEST}}, "input '../..' is not a folder of the lab"),
    (lambda r: {**r, "inputs": {"prepared": 5}}, "input 'prepared' has no sha256"),
    (lambda r: {**r, "inputs": ["raw"]}, "inputs is not an object"),
    (lambda r: {"stage": r["stage"], "pending": True, "writes": "*"}, "writes is not a list"),
    (lambda r: {"stage": r["stage"], "pending": True, "writes": ["../*"]}, "writes '../\\*'"),
    (lambda r: {"stage": r["stage"], "pending": True, "writes": ["a/b"]}, "writes 'a/b'"),
    (lambda r: {"stage": r["stage"], "pending": True, "writes": [".."]}, "writes '..'"),
]


@pytest.mark.parametrize(("change", "problem"), BAD_RECORDS)
def test_a_record_of_the_wrong_shape_is_refused_by_readers_and_writers(tmp_path, change, problem):
    lab = Lab(tmp_path / "lab")
    with handover(lab.folder("raw"), "01_ingest") as out:
        (out / "penguins.csv").write_text("Species\nAdelie\n")
    path = lab.folder("raw") / MANIFEST
    rewrite(path, change(json.loads(path.read_text())))
    before = fingerprint(tmp_path)
    not_ours = f"{path} is not a record of this project \\(.*{problem}.*\\)"
    again = re.escape(run_again("01_ingest"))
    with pytest.raises(PenguinInputError, match=f"^{not_ours}: {again}$"):
        lab.require("raw")
    with pytest.raises(PenguinInputError, match=f"^01_ingest will not replace .*: {not_ours}$"):
        handover(lab.folder("raw"), "01_ingest").__enter__()
    assert fingerprint(tmp_path) == before


def test_a_record_nested_too_deep_for_python_is_unreadable(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)  # RecursionError in json
    with pytest.raises(PenguinInputError, match=r"_manifest\.json is unreadable: run 01_ingest"):
        Lab(tmp_path).require("raw")
    with pytest.raises(PenguinInputError, match=r"not replace .*_manifest\.json is unreadable$"):
        handover(folder, "01_ingest").__enter__()


def test_a_file_taken_out_of_its_record_is_refused_by_readers(tmp_lab, record, capsys):
    # The trained weights swapped for the untrained ones, and their entry taken out of trained/'s
    # record so that nothing checks them: on 7eca39d 05_evaluate evaluated and registered them.
    path = tmp_lab.folder("trained") / MANIFEST
    manifest = json.loads(path.read_text())
    del manifest["files"][tmp_lab.weights.name]
    rewrite(path, manifest)
    tmp_lab.weights.unlink()
    tmp_lab.weights.write_bytes(tmp_lab.initial_weights.read_bytes())
    registered = versions(record)
    lab_dir = ["--lab-dir", str(tmp_lab.root)]
    err = refused(capsys, "run", "--only", "evaluate", *lab_dir)
    expected = (
        f"{tmp_lab.folder('trained')} holds files 04_train did not commit ({tmp_lab.weights.name})"
    )
    rerun = f"{program('penguins')} run --lab-dir {tmp_lab.root} --only train,evaluate"
    assert err == f"penguins run: evaluate: {expected}: run: {rerun}\n"
    assert versions(record) == registered
    predict = ["--island", "Dream", "--culmen-length", "50.4", "--culmen-depth", "15.3"]
    predict += ["--flipper-length", "200", "--body-mass", "5000"]
    assert refused(capsys, "predict", *lab_dir, *predict) == (
        f"penguins predict: {expected}: run 04_train, 05_evaluate, 06_distribute again\n"
    )


@pytest.mark.parametrize("folder", list(STAGES))
def test_a_file_added_to_a_committed_folder_is_refused(tmp_lab, folder):
    # e.g. a Parquet part added to prepared/train.parquet/: Spark would read its rows.
    listed = json.loads((tmp_lab.folder(folder) / MANIFEST).read_text())["files"]
    added = (Path(sorted(listed)[-1]).parent / "part-99999.parquet").as_posix()
    (tmp_lab.folder(folder) / added).write_bytes(b"not committed")
    again = re.escape(run_again(STAGES[folder]))
    with pytest.raises(
        PenguinInputError, match=f"did not commit \\({re.escape(added)}\\): {again}$"
    ):
        tmp_lab.require(folder)


def test_a_copied_lab_does_not_log_into_the_original_labs_store(
    tmp_lab, record, capsys, monkeypatch
):
    # tmp_lab is a copy of the session's lab: its records name the session's store, and the
    # store beside the copy is another. On 7eca39d 05_evaluate logged and registered into the
    # session's store.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(name, raising=False)
    registered = versions(record)
    own = f"sqlite:///{tracking.local_store(tmp_lab) / 'mlflow.db'}"
    assert record["tracking_uri"] != own
    err = refused(capsys, "run", "--only", "evaluate", "--lab-dir", str(tmp_lab.root))
    assert err == (
        f"penguins run: evaluate: {tmp_lab.folder('trained') / tracking.MLFLOW_JSON} names the "
        f"MLflow store {record['tracking_uri']}; this lab's runs go to {own} (was the lab "
        f"folder copied or moved?): run: {program('penguins')} run --lab-dir {tmp_lab.root} "
        "--only train,evaluate\n"
    )
    assert versions(record) == registered
    with pytest.raises(PenguinInputError, match="names the MLflow store .*: run 04_train again"):
        tracking.reopen(tmp_lab, "trained")


def test_the_workspace_store_is_kept_as_recorded(tmp_lab, record, monkeypatch):
    # On Databricks 04 records "databricks" and "databricks-uc": the workspace's, wherever the
    # lab folder is.
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # restored after the test:
        monkeypatch.setenv(name, os.environ[name])  # MLflow 3's set_tracking_uri sets them
    path = tmp_lab.folder("trained") / tracking.MLFLOW_JSON
    workspace = {"tracking_uri": "databricks", "registry_uri": "databricks-uc"}
    rewrite(path, {**json.loads(path.read_text()), **workspace})
    try:
        assert tracking.reopen(tmp_lab, "trained")["registry_uri"] == "databricks-uc"
        assert mlflow.get_registry_uri() == "databricks-uc"
    finally:  # the session's store again, for the tests after this one
        mlflow.set_tracking_uri(record["tracking_uri"])
        mlflow.set_registry_uri(record["registry_uri"])


def test_a_store_copied_with_its_lab_keeps_its_artifacts_to_itself(
    tmp_lab, local_disk, mlflow_store, capsys, monkeypatch
):
    # A lab folder copied with the store beside it: the copied store's experiment still keeps
    # its artifacts in the original's folder. On 7eca39d 04_train logged its model there.
    variables = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DATABRICKS_RUNTIME_VERSION")
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    original = local_disk / "original"
    try:
        tracking.configure(Lab(original / "lab"))  # a store and its experiment, beside a lab
        for name in variables:  # MLflow 3's set_tracking_uri sets them
            monkeypatch.delenv(name, raising=False)
        store = local_disk / "mlruns"
        shutil.copytree(original / "mlruns", store)
        lab = Lab(local_disk / "lab")
        shutil.copytree(tmp_lab.root, lab.root)
        before = fingerprint(original)
        assert main(["run", "--only", "train", "--epochs", "1", "--lab-dir", str(lab.root)]) == 2
        # The last line: MLflow logs its own lines as it opens the copied store.
        assert capsys.readouterr().err.splitlines(keepends=True)[-1] == (
            f"penguins run: train: MLflow store {store / 'mlflow.db'}: experiment "
            f"penguin_classifier keeps its artifacts in {(original / 'mlruns/artifacts').as_uri()}"
            f", outside {store} (was the store copied or moved?): move {store} away to start a "
            "new store\n"
        )
        assert fingerprint(original) == before
    finally:  # the session's store again, for the tests after this one
        mlflow.set_tracking_uri(mlflow_store)
        mlflow.set_registry_uri(mlflow_store)

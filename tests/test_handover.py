"""The lab folder's hand-over: each stage's folder is committed by a record written last, and a
reader refuses anything missing, truncated or changed with one line naming the stage to run.

Every folder here follows a Unity Catalog volume's rules (see conftest.py): nothing in it may be
renamed, linked, appended to or updated in place.
"""

from __future__ import annotations

import json

import mlflow
import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.layout import MANIFEST, STAGES, Lab, handover

from penguins.cli import main

PREDICT = ["--island", "Dream", "--culmen-length", "50.4", "--culmen-depth", "15.3"]
PREDICT += ["--flipper-length", "200", "--body-mass", "5000"]


def committed_files(lab: Lab) -> list[tuple[str, str]]:
    """``(folder, file)`` for every file every stage committed, from the records."""
    files = [
        (folder, name)
        for folder in STAGES
        for name in json.loads((lab.folder(folder) / MANIFEST).read_text())["files"]
    ]
    assert len(files) > len(STAGES)  # every stage committed at least one file
    return files


def test_every_stage_commits_its_folder_with_a_record(lab):
    lab.require(*STAGES)
    prepared = json.loads((lab.folder("prepared") / MANIFEST).read_text())
    assert prepared["stage"] == "02_prepare"
    assert prepared["parameters"] == {"oversample": 4, "test_fraction": 0.3, "seed": 0}
    # Spark's Parquet parts, written straight into the folder, are in the record too.
    parts = [n for n in prepared["files"] if n.startswith("train.parquet/part-")]
    assert parts and all(prepared["files"][n]["size"] > 0 for n in parts)


def test_each_file_truncated_or_deleted_is_refused_with_the_stage_to_run(tmp_lab, capsys):
    needed_by_predict = {"prepared", "model", "trained"}
    for folder, name in committed_files(tmp_lab):
        path = tmp_lab.folder(folder) / name
        stage = STAGES[folder]
        original = path.read_bytes()
        damages = [(None, "is missing")]  # None: delete the file
        if original:  # Spark's _SUCCESS is empty: nothing to truncate
            damages.append((original[:-1], "has .* bytes, .* were committed"))
        for content, problem in damages:
            if content is None:
                path.unlink()
            else:
                path.write_bytes(content)
            with pytest.raises(PenguinInputError, match=f"{problem}: run {stage} again$"):
                tmp_lab.require(folder)
            if folder in needed_by_predict:
                assert main(["predict", "--lab-dir", str(tmp_lab.root), *PREDICT]) == 2
                err = capsys.readouterr().err
                assert err.count("\n") == 1 and f"run {stage} again" in err
            path.write_bytes(original)
        tmp_lab.require(folder)  # whole again


def test_a_changed_file_of_the_same_size_is_refused(tmp_lab):
    data = bytearray(tmp_lab.weights.read_bytes())
    data[-30] ^= 0xFF
    tmp_lab.weights.write_bytes(bytes(data))
    with pytest.raises(PenguinInputError, match="changed after it was committed: run 04_train"):
        tmp_lab.require("trained")


def test_a_stage_that_fails_midway_leaves_nothing_committed(tmp_path):
    folder = tmp_path / "trained"
    with handover(folder, "04_train") as out:
        (out / "weights.pt").write_bytes(b"old")
    Lab(tmp_path).require("trained")
    with pytest.raises(RuntimeError), handover(folder, "04_train") as out:
        (out / "weights.pt").write_bytes(b"half")
        (folder / "straight.bin").write_bytes(b"written into the folder")
        raise RuntimeError("killed")
    # The old record went first, so neither the old nor the half-written files are used.
    with pytest.raises(PenguinInputError, match="trained is not committed .* run 04_train first"):
        Lab(tmp_path).require("trained")


def test_an_unreadable_record_is_refused(tmp_lab):
    (tmp_lab.folder("model") / MANIFEST).write_text("{not json")
    with pytest.raises(PenguinInputError, match=r"_manifest\.json is unreadable: run 03_model"):
        tmp_lab.require("model")


def test_a_hand_over_built_from_an_older_input_is_refused(tmp_lab, record, capsys):
    client = mlflow.MlflowClient()
    versions = len(client.search_model_versions(f"name = '{record['registered_model']}'"))
    lab_dir = ["--lab-dir", str(tmp_lab.root)]
    assert main(["run", "--only", "prepare", "--seed", "7", *lab_dir]) == 0
    capsys.readouterr()
    # model/ and trained/ were built from the split 02_prepare has just replaced: evaluating
    # them would score a model on rows it trained on, and register it. The first stage of the
    # chain to run again is named.
    assert main(["run", "--only", "evaluate", *lab_dir]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"penguins run: evaluate: {tmp_lab.folder('model')} was built from an older "
        f"{tmp_lab.folder('prepared')}: run 03_model again\n"
    )
    assert len(client.search_model_versions(f"name = '{record['registered_model']}'")) == versions
    with pytest.raises(
        PenguinInputError, match="trained was built from an older .*prepared: run 04"
    ):
        tmp_lab.require("trained")
    # Running the chain again clears it (not evaluate: it would register a new champion in the
    # session's registry, which other tests read).
    assert main(["run", "--only", "model,train", "--epochs", "3", *lab_dir]) == 0
    tmp_lab.require("prepared", "model", "trained")

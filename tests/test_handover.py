"""The lab folder's hand-over: each stage's folder is committed by a record written last, and a
reader refuses anything missing, truncated or changed with one line naming the stage to run.

Every folder here follows a Unity Catalog volume's rules (see conftest.py): nothing in it may be
renamed, linked, appended to or updated in place.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil

import mlflow
import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.handover import handover
from penguin_classifier.lab import Lab
from penguin_classifier.records import MANIFEST, STAGES, run_again

from penguins.cli import main, program

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
            again = re.escape(run_again(stage))
            with pytest.raises(PenguinInputError, match=f"{problem}: {again}$"):
                tmp_lab.require(folder)
            if folder in needed_by_predict:
                assert main(["predict", "--lab-dir", str(tmp_lab.root), *PREDICT]) == 2
                err = capsys.readouterr().err
                assert err.count("\n") == 1 and err.endswith(f": {run_again(stage)}\n")
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
    # them would score a model on rows it trained on, and register it. The whole chain to run
    # again is named, as the command to paste: from model (its folder is stale) to evaluate.
    assert main(["run", "--only", "evaluate", *lab_dir]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"penguins run: evaluate: {tmp_lab.folder('model')} was built from an older "
        f"{tmp_lab.folder('prepared')}: run: {program('penguins')} run --lab-dir "
        f"{tmp_lab.root} --only model,train,evaluate\n"
    )
    assert len(client.search_model_versions(f"name = '{record['registered_model']}'")) == versions
    with pytest.raises(
        PenguinInputError,
        match="trained was built from an older .*prepared: run 04_train, 05_evaluate, 06_dis",
    ):
        tmp_lab.require("trained")
    # Running the chain again clears it (not evaluate: it would register a new champion in the
    # session's registry, which other tests read).
    assert main(["run", "--only", "model,train", "--epochs", "3", *lab_dir]) == 0
    tmp_lab.require("prepared", "model", "trained")


@pytest.mark.parametrize(
    ("stage", "notebooks"),
    [
        # Each stage records the commit of the one before it: all after it are stale too.
        ("01_ingest", "01_ingest, 02_prepare, 03_model, 04_train, 05_evaluate, 06_distribute"),
        ("03_model", "03_model, 04_train, 05_evaluate, 06_distribute"),
        ("06_distribute", "06_distribute"),
    ],
)
def test_a_stale_or_damaged_folder_names_every_notebook_to_run_again(stage, notebooks):
    # On Databricks, with no penguins command, the notebooks in order, all at once.
    assert run_again(stage) == f"run {notebooks} again"


def test_the_command_a_stale_input_names_runs_the_chain(tmp_lab, capsys):
    lab_dir = ["--lab-dir", str(tmp_lab.root)]
    assert main(["run", "--only", "ingest", *lab_dir]) == 0  # raw/ committed again
    capsys.readouterr()
    assert main(["run", "--only", "model", *lab_dir]) == 2
    err = capsys.readouterr().err
    # prepared/ was built from the old raw/: prepare, then model, in one command.
    command = f"{program('penguins')} run --lab-dir {tmp_lab.root} --only prepare,model"
    assert err == (
        f"penguins run: model: {tmp_lab.folder('prepared')} was built from an older "
        f"{tmp_lab.folder('raw')}: run: {command}\n"
    )
    # Pasted as printed: the program is there, and the command runs the chain.
    words = shlex.split(command)
    assert shutil.which(words[0])
    assert main(words[1:]) == 0
    tmp_lab.require("raw", "prepared", "model")

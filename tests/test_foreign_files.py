"""The project deletes only what it wrote: every folder that holds anything else is refused in
one line before anything is touched, and every foreign file is still there, byte for byte."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.handover import handover
from penguin_classifier.lab import Lab
from penguin_classifier.records import MANIFEST, STAGES

from penguins.cli import main

PENGUINS = "Island,CulmenLength,CulmenDepth,FlipperLength,BodyMass\nBiscoe,46.1,13.2,211,4500\n"


def fingerprint(folder: Path) -> dict[str, str]:
    """``{path: sha256}`` of every file below ``folder``."""
    files = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    assert files  # a fingerprint of nothing would prove nothing
    return files


def refused(capsys, *args: str) -> str:
    """Run ``penguins ARGS``; assert exit 2 and one line on stderr; return it."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def score(lab: Lab, output, source: str | None = None) -> list[str]:
    args = ["run", "--job", "penguin_scoring", "--lab-dir", str(lab.root)]
    args += ["--param", f"output={output}"]
    return args + ([] if source is None else ["--param", f"input={source}"])


@pytest.fixture
def new_penguins(tmp_path) -> Path:
    path = tmp_path / "new" / "penguins.csv"
    path.parent.mkdir()
    path.write_text(PENGUINS)
    return path


def test_scoring_into_a_folder_of_unrelated_files_is_refused(tmp_lab, new_penguins, capsys):
    output = new_penguins.parent.parent / "mine"
    (output / "notes").mkdir(parents=True)
    (output / "thesis.tex").write_text("years of work")
    (output / "notes" / "predictions.parquet").write_bytes(b"not the project's")
    before = fingerprint(output)
    err = refused(capsys, *score(tmp_lab, output, str(new_penguins)))
    assert "07_score will not replace" in err and "did not write (notes, thesis.tex)" in err
    assert fingerprint(output) == before


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda lab: lab.root, "holds the lab folder"),
        (lambda lab: lab.folder("trained"), "is the folder of 04_train"),
        (lambda lab: lab.root.parent, "holds the lab folder"),
        # Inside a stage's folder the output would block the stage (files it did not commit);
        # deeper in the lab, the lab (a folder no stage wrote).
        (lambda lab: lab.folder("raw") / "sub", "is inside the folder of 01_ingest"),
        (lambda lab: lab.folder("scored") / "sub", "is inside .*scored: choose a folder directly"),
    ],
    ids=["lab_dir", "lab_dir/trained", "the lab's parent", "lab_dir/raw/sub", "lab_dir/scored/sub"],
)
def test_scoring_into_the_lab_or_above_it_is_refused(tmp_lab, capsys, where, message):
    before = fingerprint(tmp_lab.root)
    output = where(tmp_lab)
    err = refused(capsys, *score(tmp_lab, output))
    assert re.fullmatch(
        f"penguins run: score: parameter output: {re.escape(str(output))} {message}.*\n", err
    )
    assert fingerprint(tmp_lab.root) == before
    tmp_lab.require(*STAGES)  # every stage's commit still whole


def test_scoring_into_a_git_checkout_is_refused(
    tmp_lab, new_penguins, tmp_path, capsys, monkeypatch
):
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / "train.py").write_text("print('mine')\n")
    before = fingerprint(checkout)
    monkeypatch.chdir(checkout)
    err = refused(capsys, *score(tmp_lab, ".", str(new_penguins)))
    assert "did not write (.git, train.py)" in err
    assert fingerprint(checkout) == before


def test_an_input_inside_the_output_folder_is_refused(tmp_lab, new_penguins, capsys):
    before = fingerprint(new_penguins.parent)
    err = refused(capsys, *score(tmp_lab, new_penguins.parent, str(new_penguins)))
    assert f"holds the input {new_penguins}" in err
    assert fingerprint(new_penguins.parent) == before


def test_an_output_that_is_a_file_is_refused(tmp_lab, new_penguins, capsys):
    taken = new_penguins.parent / "taken.txt"
    taken.write_text("a file")
    err = refused(capsys, *score(tmp_lab, taken, str(new_penguins)))
    assert "is a file, not a folder" in err and taken.read_text() == "a file"


def test_scoring_again_replaces_only_its_own_commit(tmp_lab, new_penguins, tmp_path, capsys):
    output = tmp_path / "scored"
    assert main(score(tmp_lab, output, str(new_penguins))) == 0
    assert main(score(tmp_lab, output, str(new_penguins))) == 0  # its own commit: replaced
    (output / "mine.txt").write_text("added after the commit")
    capsys.readouterr()  # MLflow's warnings of the two runs
    err = refused(capsys, *score(tmp_lab, output, str(new_penguins)))
    assert "holds files 07_score did not commit (mine.txt)" in err
    assert (output / "mine.txt").read_text() == "added after the commit"


def test_a_stage_folder_holding_a_users_file_is_left_alone(tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    (lab.folder("raw")).mkdir(parents=True)
    (lab.folder("raw") / "note.txt").write_text("my note")
    for source in ("missing.csv", None):  # a bad source, then a good one
        args = ["run", "--only", "ingest", "--lab-dir", str(lab.root)]
        err = refused(capsys, *args, *([] if source is None else ["--source", source]))
        assert "01_ingest will not replace" in err and "(note.txt)" in err
    assert (lab.folder("raw") / "note.txt").read_text() == "my note"


@pytest.mark.parametrize("folder", ["/", "home"])
def test_lab_dir_must_be_a_lab_folder(tmp_path, capsys, folder):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export PS1='$ '\n")
    lab_dir = "/" if folder == "/" else str(home)
    raw_existed = Path("/raw").exists()
    err = refused(capsys, "run", "--only", "ingest", "--lab-dir", lab_dir)
    expected = "cannot be a lab folder" if folder == "/" else "holds files no stage wrote (.bashrc)"
    assert expected in err
    assert Path("/raw").exists() == raw_existed
    assert (home / ".bashrc").read_text() == "export PS1='$ '\n"


def test_a_record_of_another_stage_is_refused_by_readers_and_writers(tmp_path):
    lab = Lab(tmp_path)
    with handover(lab.folder("trained"), "07_score") as out:  # a scoring commit in trained/
        (out / "summary.json").write_text("{}")
    with pytest.raises(PenguinInputError, match="holds a commit of 07_score, not of 04_train"):
        lab.require("trained")
    with pytest.raises(PenguinInputError, match="04_train will not replace .* of 07_score"):
        handover(lab.folder("trained"), "04_train").__enter__()
    assert (lab.folder("trained") / "summary.json").read_text() == "{}"
    assert (lab.folder("trained") / MANIFEST).is_file()


def test_a_stage_stopped_midway_can_run_again(tmp_path):
    folder = tmp_path / "prepared"
    with pytest.raises(RuntimeError), handover(folder, "02_prepare", writes=("*.parquet",)):
        (folder / "train.parquet").mkdir()  # as Spark writes straight into the folder
        (folder / "train.parquet" / "part-0.parquet").write_bytes(b"half")
        raise RuntimeError("stopped")
    with pytest.raises(PenguinInputError, match="hand-over of 02_prepare did not finish"):
        Lab(tmp_path).require("prepared")
    with handover(folder, "02_prepare") as out:  # its own unfinished hand-over: replaced
        (out / "features.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "features.json"]
    Lab(tmp_path).require("prepared")


def test_a_file_put_into_a_stopped_hand_over_is_left_alone(tmp_path):
    folder = tmp_path / "prepared"
    with pytest.raises(RuntimeError), handover(folder, "02_prepare", writes=("*.parquet",)):
        (folder / "train.parquet").mkdir()
        raise RuntimeError("stopped")
    (folder / "note.txt").write_text("mine")  # the pending record never named it
    with pytest.raises(PenguinInputError, match="did not write note.txt; move them away first"):
        handover(folder, "02_prepare").__enter__()
    assert (folder / "note.txt").read_text() == "mine"
    assert (folder / "train.parquet").is_dir()


@pytest.mark.parametrize("pending", [False, True], ids=["committed", "stopped"])
def test_a_link_in_a_stage_folder_is_refused_and_what_it_reaches_kept(local_disk, pending):
    # A listed (or pending) entry swapped for a link to a user's folder: replacing the stage
    # must not delete through it.
    folder, users = local_disk / "prepared", local_disk / "users"
    users.mkdir()
    (users / "part-0.parquet").write_text("mine")
    if pending:
        with pytest.raises(RuntimeError), handover(folder, "02_prepare", writes=("*.parquet",)):
            raise RuntimeError("stopped")
    else:
        with handover(folder, "02_prepare", writes=("*.parquet",)):
            (folder / "train.parquet").mkdir()
            (folder / "train.parquet" / "part-0.parquet").write_text("ours")
        shutil.rmtree(folder / "train.parquet")
    (folder / "train.parquet").symlink_to(users, target_is_directory=True)
    with pytest.raises(PenguinInputError, match=r"it holds links \(train.parquet\)"):
        handover(folder, "02_prepare").__enter__()
    assert (users / "part-0.parquet").read_text() == "mine"
    assert (folder / "train.parquet").is_symlink()

"""Every path of the lab folder in one place, and how a stage hands its files over.

Each stage owns one folder of the lab folder and commits it with a record written last::

    lab_dir/raw/penguins.csv                                   01_ingest
    lab_dir/prepared/train.parquet/, test.parquet/,
                     features.json                             02_prepare
    lab_dir/model/config.json, initial.pt                      03_model
    lab_dir/trained/penguin_classifier.pt, history.json        04_train
    lab_dir/evaluation/loss.png, confusion_matrix.png,
                       evaluation.json                         05_evaluate
    lab_dir/distributed/penguin_classifier.pt,
                        distributed.json                       06_distribute
    lab_dir/trained|evaluation|distributed/mlflow.json         04, 05, 06: MLflow runs, model
    lab_dir/metrics/mlflow.json                                04, 05, 06: the three joined
    lab_dir/<folder>/_manifest.json                            the record: files, sizes, sha256

On Databricks the lab folder is a Unity Catalog volume, a FUSE mount where ``rename`` and ``link``
fail with ENOSYS and files cannot be appended to or rewritten in place (Databricks: "work on local
disk, then copy"). So a stage never renames anything in the lab folder: a :class:`Handover`
removes the folder's record, lets the stage build its files on local disk, copies them in with
plain sequential writes and writes the record last. Readers (:meth:`Lab.require`) check every
file against the record, so what a crashed or refused stage leaves behind is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinInputError

MANIFEST = "_manifest.json"

# The folder each stage commits, and the stage that commits it.
STAGES = {
    "raw": "01_ingest",
    "prepared": "02_prepare",
    "model": "03_model",
    "trained": "04_train",
    "evaluation": "05_evaluate",
    "distributed": "06_distribute",
    "metrics": "04_train",  # rewritten by 04, 05 and 06: tracking.save_record
}


@dataclass(frozen=True)
class Lab:
    """The lab folder: ``Lab("lab").train`` is ``lab/prepared/train.parquet``."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def folder(self, name: str) -> Path:
        return self.root / name

    raw = property(lambda self: self.root / "raw" / "penguins.csv")
    train = property(lambda self: self.root / "prepared" / "train.parquet")
    test = property(lambda self: self.root / "prepared" / "test.parquet")
    features = property(lambda self: self.root / "prepared" / "features.json")
    model_config = property(lambda self: self.root / "model" / "config.json")
    initial_weights = property(lambda self: self.root / "model" / "initial.pt")
    weights = property(lambda self: self.root / "trained" / "penguin_classifier.pt")
    history = property(lambda self: self.root / "trained" / "history.json")
    loss_plot = property(lambda self: self.root / "evaluation" / "loss.png")
    confusion_plot = property(lambda self: self.root / "evaluation" / "confusion_matrix.png")
    evaluation = property(lambda self: self.root / "evaluation" / "evaluation.json")
    distributed_weights = property(lambda self: self.root / "distributed" / "penguin_classifier.pt")
    distributed_metrics = property(lambda self: self.root / "distributed" / "distributed.json")
    mlflow_record = property(lambda self: self.root / "metrics" / "mlflow.json")

    def require(self, *folders: str) -> None:
        """Check each folder's files against its record; one line naming the stage if not."""
        for name in folders:
            verify(self.folder(name), STAGES[name])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(folder: Path) -> dict[str, dict]:
    """``{relative path: {size, sha256}}`` of every file below ``folder`` but the record."""
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def verify(folder: Path, stage: str) -> dict:
    """The folder's record, once every file it lists is there, whole and unchanged."""
    again = f"run {stage} again"
    record = folder / MANIFEST
    if not record.is_file():
        raise PenguinInputError(f"{folder} is not committed (no {MANIFEST}): run {stage} first")
    try:
        manifest = json.loads(record.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise PenguinInputError(f"{record} is unreadable: {again}") from None
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise PenguinInputError(f"{path} is missing: {again}")
        size = path.stat().st_size
        if size != expected["size"]:
            raise PenguinInputError(
                f"{path} has {size} bytes, {expected['size']} were committed: {again}"
            )
        if sha256(path) != expected["sha256"]:
            raise PenguinInputError(f"{path} changed after it was committed: {again}")
    return manifest


class Handover:
    """A stage's hand-over of its folder, begun when created and finished by :meth:`commit`.

    Creating it removes the folder's old record, then its old files. The stage builds its files
    in ``local``, a temporary folder on local disk (Spark may write its Parquet straight into
    ``folder``). :meth:`commit` copies the local files in (plain sequential writes), then writes
    the record listing every file of ``folder``. A stage that fails before :meth:`commit` leaves
    its folder uncommitted: no reader will use it.
    """

    def __init__(self, folder: str | os.PathLike, stage: str, parameters: dict | None = None):
        self.folder, self.stage, self.parameters = Path(folder), stage, parameters or {}
        (self.folder / MANIFEST).unlink(missing_ok=True)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self._local = tempfile.TemporaryDirectory(prefix=f"penguins-{self.folder.name}-")
        self.local = Path(self._local.name)

    def commit(self) -> dict:
        """Copy the local files in, then write the record; return it."""
        for path in sorted(self.local.rglob("*")):
            target = self.folder / path.relative_to(self.local)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                shutil.copyfile(path, target)
        self.close()
        manifest = {
            "stage": self.stage,
            "parameters": self.parameters,
            "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": describe(self.folder),
        }
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return manifest

    def close(self) -> None:
        """Remove the local folder (``commit`` does); the lab folder stays as it is."""
        self._local.cleanup()


@contextmanager
def handover(folder: str | os.PathLike, stage: str, parameters: dict | None = None):
    """``with handover(folder, stage) as out:`` build the files in ``out``; commit on success."""
    stage_handover = Handover(folder, stage, parameters)
    try:
        yield stage_handover.local
        stage_handover.commit()
    finally:
        stage_handover.close()


def write_json(path: str | os.PathLike, data) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())

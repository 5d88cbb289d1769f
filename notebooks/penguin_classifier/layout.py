"""Every path of the lab folder in one place, and how a stage hands its files over.

Each stage owns one folder of the lab folder and commits it with a record written last::

    lab_dir/raw/penguins.csv                                   01_ingest
    lab_dir/prepared/train.parquet/, test.parquet/,
                     features.json                             02_prepare
    lab_dir/model/config.json, network.pt, initial.pt          03_model
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
replaces the folder's record by a pending one, lets the stage build its files on local disk,
copies them in with plain sequential writes and writes the record last. Readers
(:meth:`Lab.require`) check every file against the record and that the folder holds no other,
that the record is the expected stage's, and that the folders it was built from were not
committed again since; so what a crashed, refused or outdated stage leaves behind is never used.

The project deletes only what it wrote: a hand-over replaces a folder only when it is empty or
holds an earlier commit of the same stage and nothing else, and a lab folder holds only the
stages' folders (:meth:`Lab.check`). Anything else is refused before anything is touched, and
so is a record whose fields are not of the types the project writes or that names a path
outside its folder (:func:`records.read_record`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinInputError
from .records import MANIFEST, STAGES, check_clearable, describe, shortlist, verify

# What a local run (``penguins run``) creates in the lab folder to take it for itself, and what
# it creates for a moment to take over the lock of a run that is gone (penguins/lab_lock.py).
LOCK = "_lock.json"
TAKEOVER = "_lock.takeover.json"
# The folder names a stage (or the scoring job, by default) commits in the lab folder.
LAB_FOLDERS = (*STAGES, "scored")


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

    def require(self, *folders: str) -> dict[str, str]:
        """Check each folder against its record; ``{folder: digest of its record}``, the
        ``inputs`` of the hand-over built from them. One line naming the stage to run if not."""
        return {name: verify(self.folder(name), STAGES[name]) for name in folders}

    def check(self) -> Lab:
        """Refuse a lab folder that is ``/`` or holds anything no stage wrote; return it."""
        root = self.root
        if root.resolve() == Path(root.anchor or "/").resolve():
            raise PenguinInputError(f"lab folder {root}: the root folder cannot be a lab folder")
        if root.exists() and not root.is_dir():
            raise PenguinInputError(f"lab folder {root} is a file, not a folder")
        if root.is_dir():
            foreign = [p.name for p in sorted(root.iterdir()) if not lab_entry(p)]
            if foreign:
                raise PenguinInputError(
                    f"lab folder {root} holds files no stage wrote ({shortlist(foreign)}): "
                    "choose an empty or new folder for lab_dir"
                )
        return self


def lab_entry(path: Path) -> bool:
    """Whether ``path``, directly in a lab folder, is the project's: the run lock, a stage's
    folder, or a folder committed (or being committed) by a record."""
    if path.name in (LOCK, TAKEOVER) and path.is_file():
        return True
    if not path.is_dir():
        return False
    return path.name in LAB_FOLDERS or (path / MANIFEST).is_file()


class Handover:
    """A stage's hand-over of its folder, begun when created and finished by :meth:`commit`.

    Creating it refuses a folder holding anything but an earlier commit of the same stage
    (:func:`check_clearable`), then replaces the old record by a *pending* one (the folder stays
    the stage's, uncommitted, if the stage stops midway) and removes exactly the files the old
    record listed. The stage builds its files in ``local``, a temporary folder on local disk;
    what it writes straight into ``folder`` (Spark's Parquet, the ranks' run folder) it names in
    ``writes`` (top-level names, ``fnmatch`` patterns), which the pending record keeps, so that a
    stage stopped midway can be cleared, and nothing else. :meth:`commit` names the local files
    in the pending record too, copies them in (plain sequential writes), then writes the record
    listing every file of ``folder`` and ``inputs``: the digest of each lab folder's record it
    was built from (:meth:`Lab.require`). A stage that fails before :meth:`commit` leaves its
    folder uncommitted: no reader will use it.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        stage: str,
        parameters: dict | None = None,
        inputs: dict[str, str] | None = None,
        replaces: tuple[str, ...] | None = None,
        writes: tuple[str, ...] = (),
    ):
        self.folder, self.stage, self.parameters = Path(folder), stage, parameters or {}
        self.inputs, self.writes = inputs or {}, tuple(writes)
        ours = check_clearable(self.folder, stage, replaces or (stage,))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending(self.writes)
        for path in ours:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        for path in sorted(self.folder.rglob("*"), reverse=True):  # folders the files left empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        self._local = tempfile.TemporaryDirectory(prefix=f"penguins-{self.folder.name}-")
        self.local = Path(self._local.name)

    def _pending(self, writes) -> None:
        """Replace the folder's record by a pending one naming what the stage writes into it."""
        record = {"stage": self.stage, "pending": True, "parameters": self.parameters}
        (self.folder / MANIFEST).unlink(missing_ok=True)  # a delete and a new file, no rewrite
        write_json(self.folder / MANIFEST, {**record, "writes": sorted(writes)})

    def commit(self) -> dict:
        """Copy the local files in, then write the record; return it."""
        self._pending({*self.writes, *(p.name for p in self.local.iterdir())})
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
            "inputs": self.inputs,
            "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": describe(self.folder),
        }
        # The pending record goes, the record comes: a delete and a new file, never a rewrite.
        (self.folder / MANIFEST).unlink()
        write_json(self.folder / MANIFEST, manifest)
        return manifest

    def close(self) -> None:
        """Remove the local folder (``commit`` does); the lab folder stays as it is."""
        self._local.cleanup()


@contextmanager
def handover(folder: str | os.PathLike, stage: str, *args, **kwargs):
    """``with handover(folder, stage, ...) as out:`` (:class:`Handover`'s arguments) build the
    files in ``out``; commit on success."""
    stage_handover = Handover(folder, stage, *args, **kwargs)
    try:
        yield stage_handover.local
        stage_handover.commit()
    finally:
        stage_handover.close()


def write_json(path: str | os.PathLike, data) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())

"""Every path of the lab folder in one place.

Each stage owns one folder of the lab folder and commits it with a record written last
(:mod:`handover`)::

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
    lab_dir/<folder>/_manifest.json                            the record: files, sizes, sha256

Readers (:meth:`Lab.require`) check every file against the record and that the folder holds no
other, that the record is the expected stage's, and that the folders it was built from were not
committed again since; so what a crashed, refused or outdated stage leaves behind is never used.
A lab folder holds only the stages' folders and the run lock (:meth:`Lab.check`): anything else
is refused before anything is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinInputError
from .records import MANIFEST, STAGES, shortlist, verify

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

"""Every path of the lab folder in one place, and atomic writes into it.

The stages hand over through these files::

    lab_dir/raw/penguins.csv                       01_ingest
    lab_dir/prepared/{train,test}.parquet,
                     features.json                 02_prepare
    lab_dir/model/initial.pt, config.json          03_model
    lab_dir/model/penguin_classifier.pt,
                  history.json                     04_train
    lab_dir/plots/loss.png,
    lab_dir/metrics/evaluation.json                05_evaluate
    lab_dir/distributed/penguin_classifier.pt,
    lab_dir/metrics/distributed.json               06_distribute
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinInputError


@dataclass(frozen=True)
class Lab:
    """The lab folder: ``Lab("lab").train`` is ``lab/prepared/train.parquet``."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    raw_dir = property(lambda self: self.root / "raw")
    raw = property(lambda self: self.raw_dir / "penguins.csv")
    prepared_dir = property(lambda self: self.root / "prepared")
    train = property(lambda self: self.prepared_dir / "train.parquet")
    test = property(lambda self: self.prepared_dir / "test.parquet")
    features = property(lambda self: self.prepared_dir / "features.json")
    model_dir = property(lambda self: self.root / "model")
    initial_weights = property(lambda self: self.model_dir / "initial.pt")
    model_config = property(lambda self: self.model_dir / "config.json")
    weights = property(lambda self: self.model_dir / "penguin_classifier.pt")
    history = property(lambda self: self.model_dir / "history.json")
    loss_plot = property(lambda self: self.root / "plots" / "loss.png")
    evaluation = property(lambda self: self.root / "metrics" / "evaluation.json")
    distributed_weights = property(lambda self: self.root / "distributed" / "penguin_classifier.pt")
    distributed_metrics = property(lambda self: self.root / "metrics" / "distributed.json")

    def require(self, *paths: Path, stage: str) -> None:
        """Fail with one line naming the stage to run first when an input is missing."""
        for path in paths:
            if not path.exists():
                raise PenguinInputError(f"{path} not found: run {stage} first")


@contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield an empty temporary folder beside ``path``; swap it in only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())

"""What notebook 04's training loop and notebook 06's ranks share.

Notebook 04 shows the lab's ``train`` and ``test`` functions and its epoch loop; here are the
pieces more than one place needs: the tensors of a split, the optimizer (Adam, fused where torch
has the kernel), one intra-op thread for tiny matrices, and an epoch's figures (the lab's printed
lines, and a stop at an inf or NaN loss).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pandas as pd
import torch

from .errors import PenguinInputError


@dataclass
class Epoch:
    epoch: int
    train_loss: float
    val_loss: float
    val_correct: int
    val_total: int

    def __post_init__(self):
        check_loss(self.epoch, self.train_loss)
        check_loss(self.epoch, self.val_loss)

    @property
    def val_accuracy(self) -> float:
        return self.val_correct / self.val_total

    def lines(self) -> str:
        """The lab's three lines for one epoch."""
        return (
            f"Epoch: {self.epoch}\n"
            f"Training set: Average loss: {self.train_loss:.6f}\n"
            f"Validation set: Average loss: {self.val_loss:.6f}, "
            f"Accuracy: {self.val_correct}/{self.val_total} ({100 * self.val_accuracy:.0f}%)\n"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "val_accuracy": self.val_accuracy}


def check_loss(epoch: int, loss: float) -> None:
    """Stop a run whose loss is inf or NaN: its weights are no longer numbers, and every later
    step keeps them so. Raised from the loop, before anything is saved or committed."""
    if not math.isfinite(loss):
        raise PenguinInputError(
            f"epoch {epoch}: the loss is {loss}, the weights are no longer finite numbers: "
            "try a smaller learning rate (lr)"
        )


def load_split(path, features: list[str], label: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features as float32 and labels as int64 tensors, in the file's row order."""
    df = pd.read_parquet(path)
    x = torch.tensor(df[features].to_numpy(dtype="float32"))
    y = torch.tensor(df[label].to_numpy(dtype="int64"))
    return x, y


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch has one for the device, else the default."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (``None``: leave as is)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

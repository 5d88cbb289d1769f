"""The lab's training step, shared by notebook 04 and notebook 06's ranks.

Notebook 04 runs the epoch loop over :func:`train`; notebook 06's ranks run the same ``train``
in other processes (so it lives here, importable there), with the optimizer 04 chose and
recorded (:data:`OPTIMIZERS`, :func:`recorded_optimizer`). Also here: the tensors of a split,
one intra-op thread for tiny matrices, and an epoch's figures (the lab's printed lines, and a
stop at an inf or NaN loss).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from .errors import PenguinInputError
from .jsonfile import read_json
from .records import run_again

# The optimizers a learner picks from (notebook 04's widget ``optimizer``): Adam is the lab's.
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
loss_criteria = nn.CrossEntropyLoss()  # on the log_softmax output, as in the lab


def train(model, batches, optimizer) -> float:
    """The lab's ``train``: one pass over the training batches; the mean batch loss."""
    model.train()
    batch_losses = []
    for data, target in batches:
        optimizer.zero_grad()  # set_to_none: drops the gradients rather than fill them with 0
        out = model(data)
        loss = loss_criteria(out, target)
        loss.backward()  # on a rank of notebook 06, the ranks' gradients are averaged from here
        optimizer.step()
        batch_losses.append(loss.detach())  # a tensor: no .item() (a wait for the device) per batch
    return torch.stack(batch_losses).mean().item()  # one wait an epoch


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` of :data:`OPTIMIZERS` at ``lr``, with the fused kernel where this
    torch has one for the device, else the default one."""
    params = list(params)
    # torch < 2.4 has no fused kernels on the CPU, yet its SGD takes fused=True there and fails at
    # its first step (torch 2.3.1: Databricks Runtime 15.4 LTS ML).
    if torch.__version__ < "2.4" and params[0].device.type == "cpu":
        return OPTIMIZERS[name](params, lr=lr)
    try:
        return OPTIMIZERS[name](params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return OPTIMIZERS[name](params, lr=lr)


def recorded_optimizer(history_path) -> str:
    """The optimizer notebook 04 trained with, from its ``history.json``: 06 uses the same."""
    record = read_json(history_path)
    name = record.get("optimizer") if isinstance(record, dict) else None
    if not isinstance(name, str) or name not in OPTIMIZERS:  # a list is no key: TypeError
        raise PenguinInputError(
            f"{history_path}: optimizer {name!r} is not one of {list(OPTIMIZERS)}: "
            f"{run_again('04_train')}"
        )
    return name


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

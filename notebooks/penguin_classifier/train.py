"""Stage 4, train: the lab's training loop, on in-memory batches.

Same loss (CrossEntropyLoss on the log-softmax output, as the lab), optimizer (Adam, lr 0.001),
batch size (20, no shuffling) and printed lines as the lab. Faster because batches are slices of
tensors already in memory (no DataLoader worker process), the loop runs on one thread (tiny
matrices gain nothing from more), and Adam uses its fused kernel where torch has one.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from .errors import PenguinInputError
from .layout import Handover, Lab, read_json, write_json
from .model import PenguinNet, load_model, save_weights


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


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def train_epoch(model: nn.Module, batches, optimizer, loss_fn) -> float:
    """One pass over the batches; the mean of the batch losses, as the lab prints it."""
    model.train()
    total = torch.zeros((), device=next(model.parameters()).device)
    for data, target in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(data), target)
        loss.backward()
        optimizer.step()
        total += loss.detach()
    return total.item() / len(batches)


@torch.no_grad()
def validate(model: nn.Module, x, y, batch_size: int) -> tuple[float, int]:
    """Mean of per-batch mean losses (the lab's figure) and the number of correct predictions."""
    model.eval()
    out = model(x)
    losses = nn.functional.cross_entropy(out, y, reduction="none")
    batch_means = torch.stack([chunk.mean() for chunk in losses.split(batch_size)])
    correct = int((out.argmax(dim=1) == y).sum())
    return batch_means.mean().item(), correct


def make_batches(split: tuple[torch.Tensor, torch.Tensor], batch_size: int, device) -> list:
    """``(features, labels)`` batches of ``batch_size`` rows in file order, on ``device``."""
    x, y = (t.to(device) for t in split)
    return list(zip(x.split(batch_size), y.split(batch_size), strict=True))


def fit(
    model: PenguinNet,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 100,
    lr: float = 0.001,
    batch_size: int = 20,
    device: str = "auto",
    threads: int | None = 1,
    log=print,
) -> list[Epoch]:
    """Train ``model`` in place with the lab's loop (as notebook 04 shows it); one Epoch each."""
    dev = resolve_device(device)
    model.to(dev)
    batches = make_batches(train, batch_size, dev)
    x_test, y_test = (t.to(dev) for t in test)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make_optimizer(model.parameters(), lr)
    history = []
    with torch_threads(threads if dev.type == "cpu" else None):
        for epoch in range(1, epochs + 1):
            train_loss = train_epoch(model, batches, optimizer, loss_fn)
            val_loss, correct = validate(model, x_test, y_test, batch_size)
            history.append(Epoch(epoch, train_loss, val_loss, correct, len(y_test)))
            if log:
                log(history[-1].lines())
    return history


def write_trained(out: Handover, lab: Lab, model: nn.Module, history: list[Epoch]) -> None:
    """Write ``trained/``'s files into its hand-over: the weights and every epoch's figures."""
    save_weights(model.cpu(), out.local / lab.weights.name)
    history_json = {**out.parameters, "history": [e.to_dict() for e in history]}
    write_json(out.local / lab.history.name, history_json)


def train_stage(
    lab: Lab,
    epochs: int = 100,
    lr: float = 0.001,
    batch_size: int = 20,
    device: str = "auto",
    log=print,
) -> list[Epoch]:
    """The whole stage as notebook 04 runs it, without MLflow: initial weights to ``trained/``."""
    inputs = lab.require("prepared", "model")
    spec = read_json(lab.features)
    model = load_model(lab.model_config, lab.initial_weights)
    train = load_split(lab.train, spec["features"], spec["label"])
    test = load_split(lab.test, spec["features"], spec["label"])
    history = fit(model, train, test, epochs, lr, batch_size, device, log=log)
    parameters = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device}
    out = Handover(lab.folder("trained"), "04_train", parameters, inputs)
    write_trained(out, lab, model, history)
    out.commit()
    return history

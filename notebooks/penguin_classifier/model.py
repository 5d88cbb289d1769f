"""Stage 3, model: the lab's PenguinNet, created with seeded initial weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import Lab, handover, read_json, write_json


class PenguinNet(nn.Module):
    """The lab's network: inputs → hidden → hidden → classes, ReLU, ReLU, log_softmax."""

    def __init__(self, n_features: int = 5, hidden: int = 10, n_classes: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(n_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc1_output = torch.relu(self.fc1(x))
        fc2_output = torch.relu(self.fc2(fc1_output))
        return F.log_softmax(self.fc3(fc2_output).float(), dim=1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def create_model(hidden: int = 10, seed: int = 0, n_features: int = 5, n_classes: int = 3):
    """A PenguinNet whose initial weights depend only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PenguinNet(n_features, hidden, n_classes)


def save_weights(model: nn.Module, path) -> None:
    """``torch.save`` of the state dict (to local disk: a stage then hands the file over)."""
    torch.save(model.state_dict(), path)


def load_model(config_path, weights_path) -> PenguinNet:
    """A fresh PenguinNet from ``config.json`` with weights loaded safely (``weights_only``)."""
    config = read_json(config_path)
    model = PenguinNet(config["n_features"], config["hidden"], config["n_classes"])
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    model.eval()
    return model


def new_model(lab: Lab, hidden: int = 10, seed: int = 0) -> PenguinNet:
    """A seeded PenguinNet sized for the prepared features and species."""
    lab.require("prepared")
    spec = read_json(lab.features)
    return create_model(hidden, seed, len(spec["features"]), len(spec["species"]))


def parameter_table(model: nn.Module):
    """Each learned tensor, its shape and its number of values, as a pandas table."""
    import pandas as pd

    rows = [(name, tuple(p.shape), p.numel()) for name, p in model.named_parameters()]
    return pd.DataFrame(rows, columns=["tensor", "shape", "values"])


def save_initial_model(lab: Lab, model: PenguinNet, seed: int) -> None:
    """Write and commit ``model/config.json`` and the initial weights ``model/initial.pt``."""
    config = {
        "n_features": model.fc1.in_features,
        "hidden": model.fc1.out_features,
        "n_classes": model.fc3.out_features,
        "seed": seed,
        "parameters": parameter_count(model),
    }
    inputs = lab.require("prepared")
    with handover(lab.model_config.parent, "03_model", config, inputs) as out:
        write_json(out / lab.model_config.name, config)
        save_weights(model, out / lab.initial_weights.name)

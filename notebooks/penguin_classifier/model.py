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


def save_initial_model(lab: Lab, hidden: int = 10, seed: int = 0) -> PenguinNet:
    """Write and commit ``model/config.json`` and the seeded ``model/initial.pt``."""
    lab.require("prepared")
    features = read_json(lab.features)
    with handover(lab.model_config.parent, "03_model", {"hidden": hidden, "seed": seed}) as out:
        model = create_model(hidden, seed, len(features["features"]), len(features["species"]))
        write_json(
            out / lab.model_config.name,
            {
                "n_features": len(features["features"]),
                "hidden": hidden,
                "n_classes": len(features["species"]),
                "seed": seed,
                "parameters": parameter_count(model),
            },
        )
        save_weights(model, out / lab.initial_weights.name)
    return model

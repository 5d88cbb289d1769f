"""The lab's network, PenguinNet: notebook 03 creates it, the registered model loads it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import read_json


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


def load_model(config_path, weights_path) -> PenguinNet:
    """A fresh PenguinNet from ``config.json`` with weights loaded safely (``weights_only``)."""
    config = read_json(config_path)
    model = PenguinNet(config["n_features"], config["hidden"], config["n_classes"])
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    model.eval()
    return model

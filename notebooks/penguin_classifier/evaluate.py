"""Held-out loss and accuracy of a weights file, as notebook 05 computes them.

Notebook 05 evaluates the trained model in its cells; notebook 06 evaluates the distributed
model with :func:`evaluate_weights` and compares its accuracy with 05's ``evaluation.json``.
"""

from __future__ import annotations

import torch
from torch import nn

from .jsonfile import read_json
from .lab import Lab
from .model import load_model
from .train import load_split


def evaluate_weights(lab: Lab, weights) -> dict:
    """``rows``, ``loss`` (mean cross-entropy) and ``accuracy`` of ``weights`` on ``lab.test``."""
    spec = read_json(lab.features)
    model = load_model(lab.model_config, weights)
    x_test, y_test = load_split(lab.test, spec["features"], spec["label"])
    with torch.no_grad():
        out = model(x_test)
    correct = int((out.argmax(dim=1) == y_test).sum())
    return {
        "rows": len(y_test),
        "loss": nn.CrossEntropyLoss()(out, y_test).item(),
        "accuracy": correct / len(y_test),
    }

"""Stage 5, evaluate: loss curves, learned weights, held-out metrics, the lab's new penguin.

Figures are plain ``matplotlib.figure.Figure`` objects, not pyplot's: importing this module
leaves a learner's backend alone, and Databricks renders a figure with ``display(fig)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)
from torch import nn

from .layout import Handover, Lab, read_json, write_json
from .model import load_model
from .predict import Penguin, classify
from .train import load_split

# The lab's new penguin: island index 1 (Dream in the sorted vocabulary), bill 50.4 mm,
# depth 15.3 mm, flipper 200 mm, mass 5000 g.
LAB_PENGUIN = "Dream,50.4,15.3,200,5000"


def plot_losses(history: list[dict]) -> Figure:
    """Training and validation loss by epoch."""
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(7, 4), layout="tight")
    ax = fig.subplots()
    ax.plot(epochs, [h["train_loss"] for h in history], label="training")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Penguin classifier: loss by epoch")
    ax.legend()
    return fig


def plot_confusion(metrics: dict, species: list[str]) -> Figure:
    """The held-out confusion matrix (rows: actual, columns: predicted) as a picture."""
    fig = Figure(figsize=(5, 4), layout="tight")
    matrix = ConfusionMatrixDisplay(np.array(metrics["confusion_matrix"]), display_labels=species)
    matrix.plot(ax=fig.subplots(), cmap="Blues", colorbar=False)
    matrix.ax_.set_title("Held-out penguins")
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """The figure as a PNG at ``path``; returns the path."""
    fig.savefig(path, format="png", dpi=100)
    return Path(path)


def layer_summary(model: nn.Module) -> str:
    """Each learned tensor with its shape and values, as the lab prints them."""
    lines = []
    for name, param in model.named_parameters():
        lines.append(f"{name} {tuple(param.shape)}")
        lines.append(str(param.data.numpy().round(4)))
    return "\n".join(lines)


@torch.no_grad()
def test_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, species: list[str]) -> dict:
    """Loss, accuracy, confusion matrix (rows: true, columns: predicted), per-species figures."""
    model.eval()
    out = model(x)
    predicted = out.argmax(dim=1).numpy()
    labels = list(range(len(species)))
    # zero_division=0: a species with no held-out row (or never predicted) scores 0, not NaN.
    precision, recall, f1, support = precision_recall_fscore_support(
        y.numpy(), predicted, labels=labels, zero_division=0
    )
    return {
        "rows": len(y),
        "loss": nn.functional.cross_entropy(out, y).item(),
        "accuracy": float(accuracy_score(y.numpy(), predicted)),
        "confusion_matrix": confusion_matrix(y.numpy(), predicted, labels=labels).tolist(),
        "per_species": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(species)
        },
    }


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Precision, recall, F1 and held-out rows per species, to display."""
    return pd.DataFrame(metrics["per_species"]).T.rename_axis("species").reset_index()


def held_out_metrics(lab: Lab, model: nn.Module, spec: dict) -> dict:
    """Metrics of ``model`` on ``lab.test``."""
    x, y = load_split(lab.test, spec["features"], spec["label"])
    return test_metrics(model, x, y, spec["species"])


def evaluate_weights(lab: Lab, weights) -> dict:
    """Held-out metrics of the weights file ``weights`` on ``lab.test``."""
    return held_out_metrics(lab, load_model(lab.model_config, weights), read_json(lab.features))


def write_evaluation(handover: Handover, lab: Lab, metrics: dict, new_penguin: dict) -> dict:
    """Write ``evaluation.json`` (metrics, warnings, the new penguin) into the hand-over."""
    # A species missing from the data has no held-out rows: 02_prepare warned; say it again.
    evaluation = {
        **metrics,
        "warnings": read_json(lab.features)["warnings"],
        "new_penguin": new_penguin,
    }
    write_json(handover.local / lab.evaluation.name, evaluation)
    return evaluation


def evaluate_stage(lab: Lab, new_penguin: str = LAB_PENGUIN, log=print) -> dict:
    """The whole stage as notebook 05 runs it, without MLflow and without displaying figures."""
    inputs = lab.require("prepared", "model", "trained")
    penguin = Penguin.parse(new_penguin)
    parameters = {"new_penguin": new_penguin}
    handover = Handover(lab.folder("evaluation"), "05_evaluate", parameters, inputs)
    save_figure(plot_losses(read_json(lab.history)["history"]), handover.local / lab.loss_plot.name)
    model = load_model(lab.model_config, lab.weights)
    log(layer_summary(model))
    spec = read_json(lab.features)
    metrics = held_out_metrics(lab, model, spec)
    log(metrics_table(metrics).to_string(index=False))
    save_figure(plot_confusion(metrics, spec["species"]), handover.local / lab.confusion_plot.name)
    species, probabilities = classify(model, penguin, spec)
    log(f"New penguin {new_penguin}: {species}")
    new = {"input": new_penguin, "species": species, "probabilities": probabilities}
    evaluation = write_evaluation(handover, lab, metrics, new)
    handover.commit()
    return evaluation

"""Stage 5, evaluate: loss curves, learned weights, held-out metrics, the lab's new penguin."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display needed; Databricks renders the figure through display()

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from .layout import Lab, handover, read_json, write_json  # noqa: E402
from .model import load_model  # noqa: E402
from .predict import Penguin, classify  # noqa: E402
from .train import load_split  # noqa: E402

# The lab's new penguin: island index 1 (Dream in the sorted vocabulary), bill 50.4 mm,
# depth 15.3 mm, flipper 200 mm, mass 5000 g.
LAB_PENGUIN = "Dream,50.4,15.3,200,5000"


def plot_losses(history: list[dict], path):
    """Training and validation loss by epoch, saved as PNG; returns the figure."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], label="training")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Penguin classifier: loss by epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    fig.penguins_path = str(path)
    return fig


def layer_summary(model: nn.Module) -> str:
    """Each learned tensor with its shape and values, as the lab prints them."""
    lines = []
    for name, param in model.named_parameters():
        lines.append(f"{name} {tuple(param.shape)}")
        lines.append(str(param.data.numpy().round(4)))
    return "\n".join(lines)


@torch.no_grad()
def test_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, species: list[str]) -> dict:
    """Loss, accuracy, confusion matrix (rows: true, columns: predicted), precision and recall."""
    model.eval()
    out = model(x)
    predicted = out.argmax(dim=1)
    n = len(species)
    confusion = torch.zeros((n, n), dtype=torch.int64)
    for t, p in zip(y.tolist(), predicted.tolist(), strict=True):
        confusion[t, p] += 1
    per_species = {}
    for i, name in enumerate(species):
        tp = int(confusion[i, i])
        predicted_i, actual_i = int(confusion[:, i].sum()), int(confusion[i, :].sum())
        per_species[name] = {
            "precision": tp / predicted_i if predicted_i else 0.0,
            "recall": tp / actual_i if actual_i else 0.0,
            "support": actual_i,
        }
    return {
        "rows": len(y),
        "loss": nn.functional.cross_entropy(out, y).item(),
        "accuracy": int((predicted == y).sum()) / len(y),
        "confusion_matrix": confusion.tolist(),
        "per_species": per_species,
    }


def format_metrics(metrics: dict, species: list[str]) -> str:
    lines = [
        f"Test rows: {metrics['rows']}  loss: {metrics['loss']:.4f}  "
        f"accuracy: {metrics['accuracy']:.4f}",
        "Confusion matrix (rows: actual, columns: predicted)",
        " " * 11 + "".join(f"{s:>11}" for s in species),
    ]
    for name, row in zip(species, metrics["confusion_matrix"], strict=True):
        lines.append(f"{name:>11}" + "".join(f"{v:>11}" for v in row))
    for name, m in metrics["per_species"].items():
        lines.append(f"{name:>11}: precision {m['precision']:.3f}  recall {m['recall']:.3f}")
    return "\n".join(lines)


def held_out_metrics(lab: Lab, model: nn.Module, spec: dict) -> dict:
    """Metrics of ``model`` on ``lab.test``."""
    x, y = load_split(lab.test, spec["features"], spec["label"])
    return test_metrics(model, x, y, spec["species"])


def evaluate_weights(lab: Lab, weights) -> dict:
    """Held-out metrics of the weights file ``weights`` on ``lab.test``."""
    return held_out_metrics(lab, load_model(lab.model_config, weights), read_json(lab.features))


def evaluate_stage(lab: Lab, new_penguin: str = LAB_PENGUIN, log=print, display=None) -> dict:
    """Write and commit the loss plot and ``evaluation.json``; print what the lab prints."""
    lab.require("prepared", "model", "trained")
    penguin = Penguin.parse(new_penguin)
    spec = read_json(lab.features)
    with handover(lab.evaluation.parent, "05_evaluate", {"new_penguin": new_penguin}) as out:
        fig = plot_losses(read_json(lab.history)["history"], out / lab.loss_plot.name)
        fig.penguins_path = str(lab.loss_plot)
        if display:
            display(fig)
        plt.close(fig)
        model = load_model(lab.model_config, lab.weights)
        log(layer_summary(model))
        metrics = held_out_metrics(lab, model, spec)
        log(format_metrics(metrics, spec["species"]))
        # A species missing from the data has no held-out rows: 02_prepare warned, say it again.
        metrics["warnings"] = spec["warnings"]
        for warning in metrics["warnings"]:
            log(f"WARNING: {warning}")
        species, probabilities = classify(model, penguin, spec)
        log(f"New penguin {new_penguin}: {species}")
        log("  " + "  ".join(f"{name} {p:.4f}" for name, p in probabilities.items()))
        metrics["new_penguin"] = {
            "input": new_penguin,
            "species": species,
            "probabilities": probabilities,
        }
        write_json(out / lab.evaluation.name, metrics)
    return metrics

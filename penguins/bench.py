"""``penguins bench``: the lab's training loop against this project's, same data and model.

The lab's loop is kept here as the lab wrote it (a DataLoader with one worker process, default
Adam, all of torch's threads, a ``.item()`` per batch) so the comparison is fair and repeatable.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time

import torch
import torch.utils.data as td
from penguin_classifier.ingest import ingest
from penguin_classifier.layout import Lab, read_json
from penguin_classifier.model import create_model, new_model, save_initial_model
from penguin_classifier.prepare import prepare
from penguin_classifier.runtime import local_spark, shipped_data
from penguin_classifier.train import fit, load_split
from torch import nn


def lab_train(model, data_loader, optimizer, loss_criteria) -> float:
    """The lab's ``train`` function."""
    model.train()
    train_loss = 0
    for batch, tensor in enumerate(data_loader):  # noqa: B007 (used after the loop)
        data, target = tensor
        optimizer.zero_grad()
        out = model(data)
        loss = loss_criteria(out, target)
        train_loss += loss.item()
        loss.backward()
        optimizer.step()
    return train_loss / (batch + 1)


def lab_test(model, data_loader, loss_criteria) -> tuple[float, int]:
    """The lab's ``test`` function."""
    model.eval()
    test_loss, correct, batch_count = 0, 0, 0
    with torch.no_grad():
        for _batch, tensor in enumerate(data_loader):
            batch_count += 1
            data, target = tensor
            out = model(data)
            test_loss += loss_criteria(out, target).item()
            _, predicted = torch.max(out.data, 1)
            correct += torch.sum(target == predicted).item()
    return test_loss / batch_count, correct


def lab_loop(train, test, epochs: int, seed: int) -> list[float]:
    """The lab's 100-epoch loop; returns the training loss by epoch."""
    model = create_model(seed=seed)
    train_loader = td.DataLoader(
        td.TensorDataset(*train), batch_size=20, shuffle=False, num_workers=1
    )
    test_loader = td.DataLoader(
        td.TensorDataset(*test), batch_size=20, shuffle=False, num_workers=1
    )
    loss_criteria = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    losses = []
    for _epoch in range(1, epochs + 1):
        losses.append(lab_train(model, train_loader, optimizer, loss_criteria))
        lab_test(model, test_loader, loss_criteria)
    return losses


def project_loop(train, test, epochs: int, seed: int) -> list[float]:
    model = create_model(seed=seed)
    return [e.train_loss for e in fit(model, train, test, epochs, device="cpu", log=None)]


def prepared_lab(spark=None, oversample: int = 4, seed: int = 0) -> Lab:
    """A temporary lab folder: the shipped data ingested and prepared, initial weights saved."""
    lab = Lab(tempfile.mkdtemp(prefix=f"penguins-bench-x{oversample}-seed{seed}-"))
    ingest(str(shipped_data()), lab)
    prepare(spark or local_spark(), lab, oversample_copies=oversample, seed=seed)
    save_initial_model(lab, new_model(lab, seed=seed), seed)
    return lab


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children (the loader worker)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def spread(runs: list[float]) -> dict:
    """One loop's times: median, minimum and every run, in seconds."""
    return {
        "median": round(statistics.median(runs), 3),
        "min": round(min(runs), 3),
        "runs": [round(s, 3) for s in runs],
    }


def timed(loop, *args) -> tuple[float, list[float]]:
    start = time.perf_counter()
    losses = loop(*args)
    return time.perf_counter() - start, losses


def bench(epochs: int = 100, seed: int = 0, lab: Lab | None = None, repeat: int = 3) -> dict:
    """Time each loop ``repeat`` times: on a busy machine one run can take twice another."""
    lab = lab or prepared_lab()
    spec = read_json(lab.features)
    train = load_split(lab.train, spec["features"], spec["label"])
    test = load_split(lab.test, spec["features"], spec["label"])
    lab_runs, project_runs = [], []
    for _ in range(repeat):  # alternately, so a slow spell slows both loops
        seconds, lab_losses = timed(lab_loop, train, test, epochs, seed)
        lab_runs.append(seconds)
        seconds, project_losses = timed(project_loop, train, test, epochs, seed)
        project_runs.append(seconds)
    return {
        "epochs": epochs,
        "train_rows": len(train[1]),
        "repeat": repeat,
        "lab_loop_s": spread(lab_runs),
        "project_loop_s": spread(project_runs),
        "ratio_of_medians": round(statistics.median(lab_runs) / statistics.median(project_runs), 2),
        "lab_final_loss": lab_losses[-1],
        "project_final_loss": project_losses[-1],
        "max_loss_difference": max(
            abs(a - b) for a, b in zip(lab_losses, project_losses, strict=True)
        ),
        "peak_rss_mb": peak_rss_mb(),
    }


def format_bench(result: dict) -> str:
    lab, project = result["lab_loop_s"], result["project_loop_s"]
    return "\n".join(
        [
            f"epochs: {result['epochs']}  training rows: {result['train_rows']}  "
            f"runs of each loop: {result['repeat']}",
            f"lab loop (DataLoader, num_workers=1): median {lab['median']:8.3f} s  "
            f"min {lab['min']:8.3f} s",
            f"project loop (in-memory batches):     median {project['median']:8.3f} s  "
            f"min {project['min']:8.3f} s",
            f"ratio of medians: {result['ratio_of_medians']:.1f}x faster",
            f"final training loss: lab {result['lab_final_loss']:.6f}  "
            f"project {result['project_final_loss']:.6f}  "
            f"(largest per-epoch difference {result['max_loss_difference']:.2e})",
            f"peak memory (RSS): {result['peak_rss_mb']} MB",
        ]
    )


def seed_accuracies(seeds: int, epochs: int = 100, log=print) -> list[dict]:
    """Held-out accuracy at the default parameters for seeds 0..seeds-1 (split and weights)."""
    from penguin_classifier.evaluate import evaluate_weights
    from penguin_classifier.train import train_stage

    spark = local_spark()
    rows = []
    for seed in range(seeds):
        lab = prepared_lab(spark, seed=seed)
        train_stage(lab, epochs, log=None)
        metrics = evaluate_weights(lab, lab.weights)
        rows.append({"seed": seed, "accuracy": metrics["accuracy"], "loss": metrics["loss"]})
        if log:
            log(f"seed {seed}: test accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}")
    return rows

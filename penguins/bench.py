"""``penguins bench loop``: the lab's training loop against notebook 04's, same data and model, and
the autograd floor beside them.

The lab's loop is kept here as the lab wrote it (a DataLoader with one worker process, default
Adam, all of torch's threads, a ``.item()`` per batch) so the comparison is fair and repeatable.
This project's loop is notebook 04 itself, run as ``penguins run --only train`` runs it, timed by
the cell that calls the lab's ``train`` function (its printing included), whatever its title. The
floor is the least any loop over
the same in-memory batches costs: what notebook 04's cell adds to it is its bookkeeping and the
validation each epoch. Each run of notebook 04 logs an MLflow run: unless
``MLFLOW_TRACKING_URI`` names a store, they go to a temporary one (never to ``mlruns/``).
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torch.utils.data as td
from penguin_classifier.errors import PenguinRunError
from penguin_classifier.evaluate import evaluate_weights
from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.model import load_model
from penguin_classifier.runtime import local_spark
from penguin_classifier.train import load_split, make_optimizer, torch_threads
from torch import nn

from .jobs import local_tasks, only_tasks
from .runner import TaskResult, notebook_cells, run_tasks


def calling_cell(notebook: Path, name: str) -> int:
    """The position of the first code cell of ``notebook`` that calls ``name`` (``name(...)`` or
    ``module.name(...)``), in the order ``TaskResult.cells`` times them: a phase found by what its
    cell does, which a learner retitling or rewording the cell does not change."""
    for index, cell in enumerate(notebook_cells(notebook)):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and name in (
                getattr(node.func, "id", None),
                getattr(node.func, "attr", None),
            ):
                return index
    raise PenguinRunError(f"{notebook.name}: no cell calls {name}(), the phase to time")


def loop_seconds(result: TaskResult) -> float:
    """How long notebook 04's epoch loop ran: its cell that calls the lab's ``train``."""
    [task] = only_tasks(local_tasks(), [result.key])
    index = calling_cell(task.notebook, "train")
    if index >= len(result.cells):
        raise PenguinRunError(f"{task.notebook.name} ended before its training loop")
    return result.cells[index][1]


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


def lab_loop(model, train, test, epochs: int) -> list[float]:
    """The lab's loop, training ``model`` in place; returns the training loss by epoch."""
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


def autograd_floor(model, train, epochs: int, batch_size: int = 20) -> float:
    """The autograd floor: the minimal loop over notebook 04's in-memory batches (one torch
    thread, fused Adam where torch has it; per batch zero_grad, forward, loss, backward, step;
    no bookkeeping, no validation), training ``model`` in place; its seconds."""
    batches = list(zip(train[0].split(batch_size), train[1].split(batch_size), strict=True))
    loss_criteria = nn.CrossEntropyLoss()
    optimizer = make_optimizer("adam", model.parameters(), lr=0.001)
    model.train()
    with torch_threads(1):
        start = time.perf_counter()
        for _ in range(epochs):
            for data, target in batches:
                optimizer.zero_grad(set_to_none=True)
                loss_criteria(model(data), target).backward()
                optimizer.step()
        return time.perf_counter() - start


@contextlib.contextmanager
def scratch_mlflow():
    """MLflow into a temporary store for the block, unless ``MLFLOW_TRACKING_URI`` is set;
    the environment as it was afterwards (MLflow sets its variables once a URI is set)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="penguins-bench-mlflow-") as folder:
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_URI": store}):
            yield


def run_stages(lab: Lab, stages: list[str], params: dict | None = None, spark=None):
    """Run the job's notebooks ``stages`` on ``lab`` as ``penguins run --only`` does, their
    printing kept from stdout; one TaskResult each (``cells``: each cell's seconds, in order)."""
    tasks = only_tasks(local_tasks(), stages)
    overrides = {"lab_dir": str(lab.root), **(params or {})}
    with contextlib.redirect_stdout(io.StringIO()):
        return run_tasks(tasks, overrides, spark, log=lambda *_: None)


def prepared_lab(spark=None, oversample: int = 4, seed: int = 0) -> Lab:
    """A new temporary lab folder where notebooks 01-03 ran: the shipped data ingested and
    prepared (``oversample``, split ``seed``), initial weights of ``seed`` saved."""
    lab = Lab(tempfile.mkdtemp(prefix=f"penguins-bench-x{oversample}-seed{seed}-"))
    params = {"oversample": str(oversample), "seed": str(seed)}
    run_stages(lab, ["ingest", "prepare", "model"], params, spark)
    return lab


def notebook_loop(lab: Lab, epochs: int) -> TaskResult:
    """Notebook 04 on ``lab``, on the CPU as the lab's loop; its result."""
    [result] = run_stages(lab, ["train"], {"epochs": str(epochs), "device": "cpu"})
    return result


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


def bench(epochs: int = 100, seed: int = 0, lab: Lab | None = None, repeat: int = 3) -> dict:
    """Time each loop ``repeat`` times: on a busy machine one run can take twice another.

    ``ratio_of_medians``: the lab's loop over notebook 04's; ``floor_overhead``: notebook 04's
    over the autograd floor, less 1 (0.05: 5 % slower than the floor)."""
    with scratch_mlflow():
        made = lab is None
        lab = lab or prepared_lab(seed=seed)
        try:
            return bench_lab(lab, epochs, repeat)
        finally:
            if made:
                shutil.rmtree(lab.root, ignore_errors=True)


def bench_lab(lab: Lab, epochs: int, repeat: int) -> dict:
    spec = read_json(lab.features)
    train = load_split(lab.train, spec["features"], spec["label"])
    test = load_split(lab.test, spec["features"], spec["label"])
    lab_runs, project_runs, floor_runs = [], [], []
    for _ in range(repeat):  # in turn, so a slow spell slows every loop
        model = load_model(lab.model_config, lab.initial_weights)  # what notebook 04 starts from
        start = time.perf_counter()
        lab_losses = lab_loop(model, train, test, epochs)
        lab_runs.append(time.perf_counter() - start)
        project_runs.append(loop_seconds(notebook_loop(lab, epochs)))
        floor = load_model(lab.model_config, lab.initial_weights)
        floor_runs.append(autograd_floor(floor, train, epochs))
    project_losses = [e["train_loss"] for e in read_json(lab.history)["history"]]
    trained = load_model(lab.model_config, lab.weights)  # the last run's of notebook 04
    # The floor does the same arithmetic as notebook 04 (validation changes no weight): their
    # weights are the same to the bit, or the floor is not the floor of that loop.
    same_weights = all(
        torch.equal(a, b) for a, b in zip(floor.parameters(), trained.parameters(), strict=True)
    )
    lab_median, project_median = statistics.median(lab_runs), statistics.median(project_runs)
    return {
        "epochs": epochs,
        "train_rows": len(train[1]),
        "repeat": repeat,
        "lab_loop_s": spread(lab_runs),
        "project_loop_s": spread(project_runs),
        "floor_loop_s": spread(floor_runs),
        "ratio_of_medians": round(lab_median / project_median, 2),
        "floor_overhead": round(project_median / statistics.median(floor_runs) - 1, 3),
        "floor_same_weights": same_weights,
        "lab_final_loss": lab_losses[-1],
        "project_final_loss": project_losses[-1],
        "max_loss_difference": max(
            abs(a - b) for a, b in zip(lab_losses, project_losses, strict=True)
        ),
        "peak_rss_mb": peak_rss_mb(),
    }


def format_bench(result: dict) -> str:
    lab, project = result["lab_loop_s"], result["project_loop_s"]
    floor = result["floor_loop_s"]
    return "\n".join(
        [
            f"epochs: {result['epochs']}  training rows: {result['train_rows']}  "
            f"runs of each loop: {result['repeat']}",
            f"lab loop (DataLoader, num_workers=1): median {lab['median']:8.3f} s  "
            f"min {lab['min']:8.3f} s",
            f"notebook 04 (in-memory batches):      median {project['median']:8.3f} s  "
            f"min {project['min']:8.3f} s",
            f"autograd floor (no bookkeeping):      median {floor['median']:8.3f} s  "
            f"min {floor['min']:8.3f} s",
            f"ratio of medians: {result['ratio_of_medians']:.1f}x faster than the lab's loop, "
            f"{100 * result['floor_overhead']:.1f} % over the floor"
            + ("" if result["floor_same_weights"] else " (NOT the same weights as the floor's)"),
            f"final training loss: lab {result['lab_final_loss']:.6f}  "
            f"project {result['project_final_loss']:.6f}  "
            f"(largest per-epoch difference {result['max_loss_difference']:.2e})",
            f"peak memory (RSS): {result['peak_rss_mb']} MB",
        ]
    )


def seed_accuracies(seeds: int, epochs: int = 100, log=print) -> list[dict]:
    """Held-out accuracy at the default parameters for seeds 0..seeds-1 (split and weights):
    notebooks 01-04 on a new lab folder each, the trained weights evaluated as 05 does."""
    spark = local_spark()
    rows = []
    with scratch_mlflow():
        for seed in range(seeds):
            lab = prepared_lab(spark, seed=seed)
            run_stages(lab, ["train"], {"epochs": str(epochs)})
            metrics = evaluate_weights(lab, lab.weights)
            shutil.rmtree(lab.root, ignore_errors=True)
            accuracy, loss = metrics["accuracy"], metrics["loss"]
            rows.append({"seed": seed, "accuracy": accuracy, "loss": loss})
            if log:
                log(f"seed {seed}: test accuracy {accuracy:.4f}  loss {loss:.4f}")
    return rows

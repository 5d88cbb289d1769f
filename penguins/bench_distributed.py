"""``penguins bench distributed``: one process against 2 processes for each backend.

Runs the job's notebooks as ``penguins run`` does, on the lab's data (960 training rows) and on a
training set oversampled ×100 (24,000 rows) where compute starts to matter, and prints wall time,
samples/s, start-up overhead and accuracy. One process is notebook 04's training loop (the cell
that calls ``train``); 2 processes are notebook 06's launch, start-up included.
"""

from __future__ import annotations

import io
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.launchers import installed
from penguin_classifier.runtime import local_spark

from .bench import loop_seconds
from .jobs import local_tasks, only_tasks
from .runner import TaskResult, run_tasks

SINGLE = ["ingest", "prepare", "model", "train", "evaluate"]


def quiet_run(names: list[str], overrides: dict[str, str], spark) -> list[TaskResult]:
    """Run the job's tasks ``names``; what their cells print is not the bench's output."""
    with redirect_stdout(io.StringIO()):
        return run_tasks(only_tasks(local_tasks(), names), overrides, spark, log=lambda *_: None)


def bench_distributed(epochs: int = 100, num_processes: int = 2, log=print) -> list[dict]:
    """Rows of figures: one per (data set, backend); the single process first."""
    spark = local_spark()
    backends = [b for b in ("horovod", "torch") if b == "torch" or installed("horovod.torch")]
    rows = []
    # The labs and, beside them, their MLflow store (tracking.local_store): removed afterwards.
    with tempfile.TemporaryDirectory(prefix="penguins-bench-distributed-") as folder:
        # x100: the most copies 02_prepare takes; a tenth of the epochs, as many samples.
        for oversample, data_epochs in ((4, epochs), (100, max(1, epochs // 10))):
            lab = Lab(Path(folder) / f"lab-x{oversample}")
            for run in bench_lab(lab, spark, oversample, data_epochs, backends, num_processes):
                rows.append(figures(run, oversample, data_epochs))
                if log:
                    log(format_row(rows[-1]))
    return rows


def bench_lab(lab: Lab, spark, oversample, epochs, backends, num_processes) -> list[dict]:
    """The job on a new lab folder, then notebook 06 once per backend: each run's figures."""
    settings = {"lab_dir": str(lab.root), "epochs": str(epochs)}
    results = quiet_run(SINGLE, {**settings, "oversample": str(oversample)}, spark)
    seconds = loop_seconds(next(result for result in results if result.key == "train"))
    accuracy = read_json(lab.evaluation)["accuracy"]
    single = {"wall_s": seconds, "train_s": seconds, "startup_s": 0.0, "accuracy": accuracy}
    runs = [{"backend": "single", "processes": 1, **single}]
    for backend in backends:
        quiet_run(
            ["distribute"],
            {**settings, "backend": backend, "num_processes": str(num_processes)},
            spark,
        )
        runs.append({"processes": num_processes, **read_json(lab.distributed_metrics)})
    return runs


def figures(run: dict, oversample: int, epochs: int) -> dict:
    """One row of the table: a run's times, throughput and accuracy."""
    train_rows = 240 * oversample
    return {
        "data": f"x{oversample} ({train_rows} rows)",
        "backend": run["backend"],
        "processes": run["processes"],
        "epochs": epochs,
        "wall_s": round(run["wall_s"], 2),
        "startup_s": round(run["startup_s"], 2),
        "train_s": round(run["train_s"], 2),
        "samples_per_s": round(train_rows * epochs / run["wall_s"]),
        "train_samples_per_s": round(train_rows * epochs / run["train_s"]),
        "accuracy": round(run["accuracy"], 4),
    }


HEADER = (
    f"{'data':<20}{'backend':<9}{'procs':>6}{'epochs':>7}{'wall s':>9}{'start s':>9}"
    f"{'train s':>9}{'samples/s':>11}{'train samples/s':>17}{'accuracy':>10}"
)


def format_row(row: dict) -> str:
    return (
        f"{row['data']:<20}{row['backend']:<9}{row['processes']:>6}{row['epochs']:>7}"
        f"{row['wall_s']:>9.2f}{row['startup_s']:>9.2f}{row['train_s']:>9.2f}"
        f"{row['samples_per_s']:>11}{row['train_samples_per_s']:>17}{row['accuracy']:>10.4f}"
    )

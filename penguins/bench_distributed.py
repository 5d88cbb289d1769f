"""``penguins bench --distributed``: one process against 2 processes for each backend.

Runs on the lab's data (960 training rows) and on a training set oversampled ×200 (48,000 rows)
where compute starts to matter, and prints wall time, samples/s, start-up overhead and accuracy.
"""

from __future__ import annotations

import time

from penguin_classifier.distribute import distribute_stage, installed
from penguin_classifier.evaluate import evaluate_stage
from penguin_classifier.layout import Lab
from penguin_classifier.runtime import local_spark
from penguin_classifier.train import train_stage

from .bench import prepared_lab


def single_run(lab: Lab, epochs: int) -> dict:
    start = time.perf_counter()
    history = train_stage(lab, epochs, log=None)
    wall_s = time.perf_counter() - start
    metrics = evaluate_stage(lab, log=lambda *_: None)  # the distributed stage compares with it
    return {"wall_s": wall_s, "train_s": wall_s, "startup_s": 0.0, "accuracy": metrics["accuracy"],
            "final_loss": history[-1].train_loss}  # fmt: skip


def bench_distributed(epochs: int = 100, num_processes: int = 2, log=print) -> list[dict]:
    """Rows of figures: one per (data set, backend); the single process first."""
    spark = local_spark()
    backends = [b for b in ("horovod", "torch") if b == "torch" or installed("horovod.torch")]
    rows = []
    for oversample, data_epochs in ((4, epochs), (200, max(1, epochs // 20))):
        lab = prepared_lab(spark, oversample)
        train_rows = 240 * oversample
        runs = [("single", 1, single_run(lab, data_epochs))]
        for backend in backends:
            summary = distribute_stage(
                lab, spark, backend, num_processes, data_epochs, log=lambda *_: None
            )
            runs.append((backend, num_processes, summary))
        for name, processes, run in runs:
            row = {
                "data": f"x{oversample} ({train_rows} rows)",
                "backend": name,
                "processes": processes,
                "epochs": data_epochs,
                "wall_s": round(run["wall_s"], 2),
                "startup_s": round(run["startup_s"], 2),
                "train_s": round(run["train_s"], 2),
                "samples_per_s": round(train_rows * data_epochs / run["wall_s"]),
                "train_samples_per_s": round(train_rows * data_epochs / run["train_s"]),
                "accuracy": round(run["accuracy"], 4),
            }
            rows.append(row)
            log(format_row(row))
    return rows


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

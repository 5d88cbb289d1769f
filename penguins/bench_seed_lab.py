"""``penguins bench seed-lab``: ``make run`` against the seed lab's own cells, same machine.

The seed lab is the lab notebook as it was written, before this project: a cell that fetches the
CSV, a PySpark cell that drops incomplete rows, indexes the islands by a join, scales two
measurements, oversamples (x4) and splits with scikit-learn's ``train_test_split`` on
``toPandas()``, then PyTorch: DataLoaders (``num_workers=1``), PenguinNet and 100 epochs of its
train and test functions (``penguins.bench.lab_loop``, without the per-epoch printing).
:func:`seed_lab` runs those cells (this module run as a script: ``python -m
penguins.bench_seed_lab <folder>``); :func:`bench_seed_lab` times it and ``penguins run`` (what
``make run`` runs), each a new process from start to exit, in turn, and gives the ratio of the
medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from penguin_classifier.errors import PenguinRunError
from penguin_classifier.runtime import shipped_data


def seed_lab(folder: Path, epochs: int = 100) -> None:
    """The seed lab's cells, ingest to the last epoch, in ``folder``; prints as they do."""
    # Ingest (a shell cell there: remove the folder, make it, download the CSV into it). Here
    # the folder must be new: nothing is removed that this run did not write.
    data_dir = folder / "deepml_lab"
    data_dir.mkdir(parents=True)  # FileExistsError if it is there
    shutil.copyfile(shipped_data(), data_dir / "penguins.csv")

    # Prepare, in PySpark: the session the notebook is given, then its one cell.
    from penguin_classifier.runtime import local_spark
    from pyspark.sql.functions import col, collect_set
    from sklearn.model_selection import train_test_split

    spark = local_spark("penguins-seed-lab")
    df = spark.read.format("csv").option("header", "true").load(str(data_dir / "penguins.csv"))
    df = df.dropna()
    islands = df.select(collect_set("Island").alias("Islands")).first()["Islands"]
    indexes = spark.createDataFrame([(name, i) for i, name in enumerate(islands)])
    data = df.join(indexes.toDF("Island", "IslandIdx"), ["Island"], "left").select(
        col("IslandIdx"),
        col("CulmenLength").astype("float"),
        col("CulmenDepth").astype("float"),
        (col("FlipperLength").astype("float") / 10).alias("FlipperScaled"),
        (col("BodyMass").astype("float") / 100).alias("MassScaled"),
        col("Species").astype("int"),
    )
    for _ in range(2):  # oversampled: each union doubles the rows
        data = data.union(data)
    features = ["IslandIdx", "CulmenLength", "CulmenDepth", "FlipperScaled", "MassScaled"]
    # As the lab does: toPandas() twice, once for the features and once for the label.
    x_train, x_test, y_train, y_test = train_test_split(
        data.toPandas()[features].values,
        data.toPandas()["Species"].values,
        test_size=0.30,
        random_state=0,
    )
    print(f"Training Set: {len(x_train)} rows, Test Set: {len(x_test)} rows")

    # PyTorch: the imports, the tensors, PenguinNet and the loop (the lab's, see penguins.bench).
    import torch
    import torch.nn.functional as F
    from torch import nn

    from .bench import lab_loop

    class PenguinNet(nn.Module):  # the lab's, 5 -> 10 -> 10 -> 3
        def __init__(self, n_features, hidden=10, n_classes=3):
            super().__init__()
            self.fc1 = nn.Linear(n_features, hidden)
            self.fc2 = nn.Linear(hidden, hidden)
            self.fc3 = nn.Linear(hidden, n_classes)

        def forward(self, x):
            fc1_output = torch.relu(self.fc1(x))
            fc2_output = torch.relu(self.fc2(fc1_output))
            return F.log_softmax(self.fc3(fc2_output).float(), dim=1)

    torch.manual_seed(0)
    train = torch.Tensor(x_train).float(), torch.Tensor(y_train).long()
    test = torch.Tensor(x_test).float(), torch.Tensor(y_test).long()
    losses = lab_loop(PenguinNet(len(features)), train, test, epochs)
    print(f"final training loss {losses[-1]:.6f}")


def timed(command: list[str], what: str, **kwargs) -> float:
    """Seconds from starting ``command`` to its exit; its output kept from the terminal."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    seconds = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PenguinRunError(f"{what} failed (exit {done.returncode}): {last}")
    return seconds


def bench_seed_lab(repeat: int = 3) -> dict:
    """The seed lab's cells and ``penguins run`` (the training job, on a new lab folder with
    its own MLflow store each time), ``repeat`` times each, in turn; seconds and their ratio.

    Both run as a user starts them: a new Python process (Python's imports and Spark's start
    included), timed to its exit. ``ratio``: ``penguins run``'s median over the seed lab's.
    """
    penguins = shutil.which("penguins", path=str(Path(sys.executable).parent)) or "penguins"
    seed, job = [], []
    with tempfile.TemporaryDirectory(prefix="penguins-bench-seed-lab-") as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        for run in range(repeat):
            lab_folder = Path(folder) / f"seed-{run}"
            command = [sys.executable, "-m", __name__, str(lab_folder)]
            seed.append(timed(command, "the seed lab", env=env))
            command = [penguins, "run", "--lab-dir", str(Path(folder) / f"lab-{run}")]
            job.append(timed(command, "penguins run", env=env))
    seed_s, job_s = statistics.median(seed), statistics.median(job)
    return {
        "repeat": repeat,
        "seed_lab_s": [round(s, 2) for s in seed],
        "penguins_run_s": [round(s, 2) for s in job],
        "seed_lab_median_s": round(seed_s, 2),
        "penguins_run_median_s": round(job_s, 2),
        "ratio": round(job_s / seed_s, 3),
    }


def format_seed_lab(result: dict) -> str:
    seed, job = result["seed_lab_s"], result["penguins_run_s"]
    return "\n".join(
        [
            f"each a new process, start to exit, {result['repeat']} runs in turn:",
            f"  the seed lab's cells (ingest, prepare, 100 epochs): median "
            f"{result['seed_lab_median_s']:6.2f} s  runs {seed}",
            f"  penguins run (make run: the whole training job):  median "
            f"{result['penguins_run_median_s']:6.2f} s  runs {job}",
            f"  ratio: {result['ratio']:.2f}x the seed lab's time",
        ]
    )


if __name__ == "__main__":  # one run of the seed lab: python -m penguins.bench_seed_lab FOLDER
    seed_lab(Path(sys.argv[1]))

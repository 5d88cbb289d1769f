"""``penguins bench scoring``: the scoring job end to end, cell by cell, and rows per second
scoring inside Spark against one pandas call."""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import DEVNULL, PIPE

import mlflow
import numpy as np
import pandas as pd
from penguin_classifier.errors import PenguinInputError, PenguinRunError
from penguin_classifier.features import INPUTS, MEASUREMENTS
from penguin_classifier.lab import Lab
from penguin_classifier.registry import load_pyfunc
from penguin_classifier.runtime import shipped_data
from penguin_classifier.scoring import ARROW_BATCH_ROWS, model_udf
from penguin_classifier.tracking import locations
from pyspark.sql import DataFrame, SparkSession

SPARK_DEFAULT_BATCH_ROWS = 10_000  # spark.sql.execution.arrow.maxRecordsPerBatch


def complete_rows(rows: int) -> pd.DataFrame:
    """``rows`` penguins: the shipped data's complete rows (labels too), repeated."""
    complete = pd.read_csv(shipped_data()).dropna()
    complete = complete.astype({c: "float64" for c in MEASUREMENTS})
    return complete.iloc[np.arange(rows) % len(complete)].reset_index(drop=True)


# Notebook 07's work starts at the cell that reads the rows (``scoring.read_input``); the cells
# before it read the widgets, point MLflow at the registry and load the model.
READS_ROWS = "read_input"


def bench_scoring_job(rows: int, lab_dir: str, model_uri: str, repeat: int = 3) -> dict:
    """The ``penguin_scoring`` job (notebook 07 through :func:`runner.run_tasks`, as ``penguins
    run --job penguin_scoring`` runs it) on a CSV of ``rows`` penguins, each cell timed.

    Each of the ``repeat`` runs is a fresh process, so each pays for Python's imports and
    Spark's start-up as a user's run does (``wall_s``: from starting the process to the job's
    end); that process then runs the job again on the same SparkSession, its JVM compiled and
    its Python workers started: the work after start-up (``again_*``). The model comes from
    the MLflow store beside ``lab_dir``; the CSV, the lab folders and the outputs live in a
    temporary folder, removed at the end. The medians count.
    """
    tracking_uri, registry_uri = locations(Lab(lab_dir))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": registry_uri}
    with tempfile.TemporaryDirectory(prefix="penguins-bench-scoring-") as folder:
        source = Path(folder) / "penguins.csv"
        complete_rows(rows).to_csv(source, index=False)
        runs = []
        for run in range(repeat):
            started = time.time()  # the clock both processes share
            # A new interpreter (not multiprocessing: it would hand over this process's
            # sys.path, where loading a model put the model's copy of penguin_classifier).
            answer = Path(folder) / f"run-{run}.json"
            command = [sys.executable, "-m", __name__, folder, str(source), model_uri, str(run)]
            done = subprocess.run(command, env=env, stdout=DEVNULL, stderr=PIPE, text=True)
            result = json.loads(answer.read_text()) if answer.is_file() else {}
            if "error" in result:  # a PenguinInputError: its one line
                raise PenguinInputError(result["error"])
            if done.returncode or not result:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise PenguinRunError(f"scoring benchmark run {run} failed: {last}")
            runs.append({**result, "started": started})
    first, again = [r["first"] for r in runs], [r["again"] for r in runs]
    titles = [title for title, _ in first[0]["cells"]]  # labels only: cells go by position

    def by_cell(job_runs: list[dict]) -> list[list]:
        """Each cell's title and median seconds, in the notebook's order."""
        return [[t, median(r["cells"][i][1] for r in job_runs)] for i, t in enumerate(titles)]

    work = [r["work_s"] for r in again]
    return {
        "rows": rows,
        "repeat": repeat,
        "wall_s": median(r["first"]["ended"] - r["started"] for r in runs),
        "spark_start_s": median(r["spark_start_s"] for r in first),
        "job_s": median(r["seconds"] for r in first),
        "cells_s": by_cell(first),
        "again_job_s": median(r["seconds"] for r in again),
        "again_cells_s": by_cell(again),
        "again_work_s": median(work),
        "again_rows_per_s": round(rows / statistics.median(work)),
        "scored_rows": first[0]["task_values"]["scored_rows"],
    }


def median(values) -> float:
    return round(statistics.median(values), 2)


def score_twice(folder: str, source: str, model_uri: str, run: int) -> dict:
    """In this new process: start Spark (timed), run the scoring job, then run it again."""
    from penguin_classifier.runtime import local_spark

    from .bench import calling_cell
    from .jobs import local_tasks
    from .runner import run_tasks

    start = time.perf_counter()
    spark = local_spark("penguins-bench-scoring-job")
    spark_start_s = time.perf_counter() - start
    results = {}
    for name in ("first", "again"):
        lab = Path(folder) / f"lab-{run}-{name}"
        (task,) = local_tasks(job="penguin_scoring", parameters={"lab_dir": str(lab)})
        output = str(lab.parent / f"{lab.name}-scored")
        params = {"input": source, "model": model_uri, "output": output}
        with contextlib.redirect_stdout(io.StringIO()):  # the notebook's tables and lines
            (result,) = run_tasks([task], params, spark, log=lambda *_: None)
        results[name] = {"seconds": result.seconds, "cells": result.cells, "ended": time.time()}
        work = result.cells[calling_cell(task.notebook, READS_ROWS) :]  # from the read on
        results[name] |= {"work_s": sum(s for _, s in work), "task_values": result.task_values}
    results["first"]["spark_start_s"] = spark_start_s
    return results


def bench_scoring(spark: SparkSession, rows: int, model_uri: str, repeat: int = 3) -> dict:
    """Rows per second: scoring ``rows`` penguins with Spark, and in one pandas call.

    The rows repeat the shipped data's complete rows. Spark's side is timed on a cached
    DataFrame written to Spark's ``noop`` sink (the scoring of notebook 07, without reading or
    writing files), after a warm-up that starts the Python workers and builds the model in each
    (timed apart): notebook 07's function (``scoring.model_udf``) in Arrow batches of its size
    and of Spark's default, and ``mlflow.pyfunc.spark_udf`` (workers that load the pyfunc with
    MLflow) in batches of notebook 07's size. Each runs ``repeat`` times, in turn; the medians
    count.
    """
    model, _ = load_pyfunc(model_uri)
    frame = complete_rows(rows)[INPUTS]
    data = spark.createDataFrame(frame).cache()
    data.count()
    partitions = data.rdd.getNumPartitions()
    notebook_udf = model_udf(model)
    # MLflow's, with the same output columns.
    spark_udf = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=notebook_udf.returnType, env_manager="local"
    )
    functions = {  # name: (the function, rows per Arrow batch)
        "model_udf": (notebook_udf, ARROW_BATCH_ROWS),
        "default_batch": (notebook_udf, SPARK_DEFAULT_BATCH_ROWS),
        "spark_udf": (spark_udf, ARROW_BATCH_ROWS),
    }

    def spark_scoring(df: DataFrame, name: str) -> float:
        predict, batch_rows = functions[name]
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", batch_rows)
        start = time.perf_counter()
        df.select(predict(*INPUTS)).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - start

    def pandas_scoring() -> float:
        start = time.perf_counter()
        model.predict(frame)
        return time.perf_counter() - start

    sample = data.limit(1000).repartition(partitions)
    warmup = {name: round(spark_scoring(sample, name), 3) for name in functions}
    timed = {name: [] for name in functions}
    for _ in range(repeat):  # each function in turn
        for name, times in timed.items():
            times.append(spark_scoring(data, name))
    data.unpersist()
    seconds = {name: statistics.median(times) for name, times in timed.items()}
    pandas_s = statistics.median(pandas_scoring() for _ in range(repeat))
    result = {"rows": rows, "repeat": repeat, "partitions": partitions, "warmup_s": warmup}
    result |= {"batch_rows": ARROW_BATCH_ROWS, "default_batch_rows": SPARK_DEFAULT_BATCH_ROWS}
    for name, s in [*seconds.items(), ("pandas", pandas_s)]:
        result |= {f"{name}_s": round(s, 3), f"{name}_rows_per_s": round(rows / s)}
    return result


if __name__ == "__main__":  # one run of bench_scoring_job: python -m penguins.bench_scoring ...
    folder, source, model_uri, run = sys.argv[1:]
    try:
        answer = score_twice(folder, source, model_uri, int(run))
    except PenguinInputError as error:
        answer = {"error": str(error)}
    Path(folder, f"run-{run}.json").write_text(json.dumps(answer))

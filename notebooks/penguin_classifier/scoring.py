"""Batch scoring with Spark: the registered pyfunc model applied to a CSV file or a table.

:func:`score` reads the lab's columns (``Island``, ``CulmenLength``, ``CulmenDepth``,
``FlipperLength``, ``BodyMass``; optionally ``Species`` labels 0/1/2), scores every complete row
inside Spark with ``mlflow.pyfunc.spark_udf`` (each Python worker loads the model once) and
writes ``<output>/predictions.parquet``: the input columns, ``predicted_species`` and one
``probability_<species>`` column per species. A row with a missing value is kept with null
predictions and counted; a value the model cannot take (an unknown island, a measurement that is
not a positive number) stops the run with one line before anything is scored.

The output folder is committed like a stage's folder (``_manifest.json`` written last, with
``summary.json``); Spark writes its Parquet straight into it (on Databricks, volumes through
cloud storage).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from functools import reduce
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from .errors import PenguinInputError
from .features import INPUTS, LABEL, MEASUREMENT, MEASUREMENTS, MISSING, is_measurement
from .layout import Handover, write_json
from .predict import probability_column
from .registry import load_pyfunc
from .runtime import shipped_data

PREDICTED = "predicted_species"
PREDICTIONS = "predictions.parquet"
SUMMARY = "summary.json"


@dataclass
class ScoringReport:
    rows: int
    incomplete: int  # rows with a missing value: kept with null predictions
    per_species: dict[str, int]  # scored rows per predicted species
    labelled: int  # scored rows with a Species label
    accuracy: float | None  # on the labelled rows; None without labels
    output: str

    def summary(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in self.per_species.items())
        lines = [
            f"{self.rows} rows: {self.rows - self.incomplete} scored ({counts}), "
            f"{self.incomplete} incomplete (not scored)"
        ]
        if self.accuracy is not None:
            lines.append(f"accuracy {self.accuracy:.4f} on {self.labelled} labelled rows")
        lines.append(f"written to {self.output}")
        return "\n".join(lines)


def read_input(spark: SparkSession, source: str) -> DataFrame:
    """A CSV file with a header (a path: it has a ``/`` or ends in ``.csv``) or a table."""
    csv = "/" in source or source.endswith(".csv")
    local = "://" not in source and not source.startswith("dbfs:")
    if csv and local and not Path(source).is_file():
        raise PenguinInputError(f"input {source} not found")
    try:
        data = (
            spark.read.csv(source, header=True, inferSchema=False) if csv else spark.table(source)
        )
    except AnalysisException as error:  # no such table or path, a name the catalog cannot hold
        raise PenguinInputError(f"input {source}: {str(error).strip().splitlines()[0]}") from None
    missing = [c for c in INPUTS if c not in data.columns]
    if missing:
        raise PenguinInputError(f"input {source}: missing columns {missing}; expected {INPUTS}")
    return data


def text(column: str) -> Column:
    return F.trim(F.col(column).cast("string"))


def number(column: str, kind: str = "DOUBLE") -> Column:
    """The value as ``kind``, null when it is not one (``try_cast``: Spark 3.2+, ANSI mode too)."""
    return F.expr(f"try_cast(trim(CAST(`{column}` AS STRING)) AS {kind})")


def parse(data: DataFrame, islands: list[str], n_species: int) -> DataFrame:
    """The lab's columns typed, null where missing, and ``_problem``: why a row cannot be scored.

    Missing is null, empty, ``NA`` or ``NaN`` (as 01_ingest reads them); ``_problem`` names the
    first value that is there but wrong: an island not in ``islands``, a measurement that is not
    a finite positive float32 (:mod:`values`), a label that is not 0 to ``n_species - 1``.
    """
    names = [c for c in [*INPUTS, LABEL] if c in data.columns]
    present = {c: text(c).isNotNull() & ~text(c).isin(*MISSING) for c in names}
    problems = [
        F.when(
            present["Island"] & ~text("Island").isin(*islands),
            F.concat(
                F.lit("island '"),
                text("Island"),
                F.lit(f"' is not in the saved vocabulary {islands}"),
            ),
        )
    ]
    for c in MEASUREMENTS:
        value = number(c)
        bad = value.isNull() | ~is_measurement(value)
        problems.append(
            F.when(
                present[c] & bad,
                F.concat(F.lit(f"{c} '"), text(c), F.lit(f"' is not {MEASUREMENT}")),
            )
        )
    columns = [F.when(present["Island"], text("Island")).alias("Island")]
    columns += [F.when(present[c], number(c)).alias(c) for c in MEASUREMENTS]
    if LABEL in data.columns:
        label = number(LABEL, "INT")
        wrong = label.isNull() | (label < 0) | (label >= n_species)
        problems.append(
            F.when(
                present[LABEL] & wrong,
                F.concat(F.lit(f"{LABEL} '"), text(LABEL), F.lit(f"' is not 0 to {n_species - 1}")),
            )
        )
        columns.append(F.when(present[LABEL], label).alias(LABEL))
    return data.select(*columns, F.coalesce(*problems).alias("_problem"))


def predictions_type(species: list[str]) -> StructType:
    """The model's output as Spark sees it: ``species`` and one probability per species."""
    fields = [StructField("species", StringType())]
    fields += [StructField(probability_column(s), DoubleType()) for s in species]
    return StructType(fields)


def check(typed: DataFrame, source: str) -> None:
    """Refuse, in one line, input with a value the model cannot take (one Spark job)."""
    problems = typed.agg(F.count("_problem").alias("n"), F.first("_problem", True).alias("first"))
    found = problems.first()
    if found["n"]:
        rows = "1 row" if found["n"] == 1 else f"{found['n']} rows"
        raise PenguinInputError(f"input {source}: {rows} cannot be scored, e.g. {found['first']}")


def scored(spark: SparkSession, typed: DataFrame, model_uri: str, species: list[str]) -> DataFrame:
    """The input columns, ``predicted_species`` and the probabilities; null for incomplete rows.

    The model runs inside Spark: ``mlflow.pyfunc.spark_udf`` loads it once per Python worker.
    """
    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=predictions_type(species), env_manager="local"
    )
    inputs = typed.drop("_problem")
    outputs = [probability_column(s) for s in species]
    complete = reduce(Column.__and__, [F.col(c).isNotNull() for c in INPUTS])
    # Two parts, not F.when(complete, udf(...)): Spark would call the model on every row.
    done = inputs.where(complete).withColumn("_out", udf(*INPUTS))
    done = done.select(
        *inputs.columns,
        F.col("_out.species").alias(PREDICTED),
        *(F.col(f"_out.{c}").alias(c) for c in outputs),
    )
    nulls = [F.lit(None).cast("string").alias(PREDICTED)]
    nulls += [F.lit(None).cast("double").alias(c) for c in outputs]
    return done.unionByName(inputs.where(~complete).select(*inputs.columns, *nulls))


def summarise(predictions: DataFrame, species: list[str], output: str) -> ScoringReport:
    """Counts per predicted species and, with labels, accuracy: one Spark job."""
    counts = [F.count("*").alias("rows"), F.count(PREDICTED).alias("scored")]
    counts += [F.count(F.when(F.col(PREDICTED) == s, 1)).alias(s) for s in species]
    labelled = LABEL in predictions.columns
    if labelled:
        names = F.array(*(F.lit(s) for s in species))
        has_label = F.col(LABEL).isNotNull() & F.col(PREDICTED).isNotNull()
        right = has_label & (F.col(PREDICTED) == F.element_at(names, F.col(LABEL) + 1))
        counts += [F.count(F.when(has_label, 1)).alias("labelled")]
        counts += [F.count(F.when(right, 1)).alias("right")]
    row = predictions.agg(*counts).first()
    n_labelled = row["labelled"] if labelled else 0
    return ScoringReport(
        rows=row["rows"],
        incomplete=row["rows"] - row["scored"],
        per_species={s: row[s] for s in species},
        labelled=n_labelled,
        accuracy=row["right"] / n_labelled if n_labelled else None,
        output=output,
    )


def save(handover: Handover, predictions: DataFrame, species: list[str]) -> ScoringReport:
    """Write the predictions (Spark, straight into the folder) and ``summary.json``; commit."""
    path = str(handover.folder / PREDICTIONS)
    predictions.write.parquet(path)
    report = summarise(predictions.sparkSession.read.parquet(path), species, path)
    write_json(handover.local / SUMMARY, asdict(report))
    handover.commit()
    return report


def score(spark: SparkSession, source: str, model_uri: str, output: str) -> ScoringReport:
    """Score ``source`` with ``model_uri``; write and commit the folder ``output``; the counts.

    ``source``: a CSV path or a table name. ``model_uri``: e.g.
    ``models:/penguin_classifier@champion``, with MLflow configured first
    (``tracking.configure``). ``output`` is replaced once the input has passed the checks.
    """
    _, spec = load_pyfunc(model_uri)
    species = spec["species"]
    typed = parse(read_input(spark, source), spec["islands"], len(species)).cache()
    try:
        check(typed, source)
        handover = Handover(output, "07_score", {"input": source, "model": model_uri})
        return save(handover, scored(spark, typed, model_uri, species), species)
    finally:
        typed.unpersist()


def bench_scoring(spark: SparkSession, rows: int, model_uri: str, repeat: int = 3) -> dict:
    """Rows per second: scoring ``rows`` penguins with Spark, and in one pandas call.

    The rows repeat the shipped data's complete rows. Spark's side is timed on a cached
    DataFrame written to Spark's ``noop`` sink (the scoring, without reading or writing files),
    after a warm-up that starts the Python workers and loads the model in each (timed apart).
    Each side runs ``repeat`` times; the medians count.
    """
    model, spec = load_pyfunc(model_uri)
    complete = pd.read_csv(shipped_data()).dropna()[INPUTS]
    complete = complete.astype({c: "float64" for c in MEASUREMENTS})
    frame = complete.iloc[np.arange(rows) % len(complete)].reset_index(drop=True)
    data = spark.createDataFrame(frame).cache()
    data.count()
    partitions = data.rdd.getNumPartitions()
    result_type = predictions_type(spec["species"])
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")

    def spark_scoring(df: DataFrame) -> float:
        start = time.perf_counter()
        df.select(udf(*INPUTS)).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - start

    def pandas_scoring() -> float:
        start = time.perf_counter()
        model.predict(frame)
        return time.perf_counter() - start

    warmup_s = spark_scoring(data.limit(1000).repartition(partitions))
    spark_s = statistics.median(spark_scoring(data) for _ in range(repeat))
    data.unpersist()
    pandas_s = statistics.median(pandas_scoring() for _ in range(repeat))
    return {
        "rows": rows,
        "repeat": repeat,
        "partitions": partitions,
        "spark_warmup_s": round(warmup_s, 3),
        "spark_s": round(spark_s, 3),
        "spark_rows_per_s": round(rows / spark_s),
        "pandas_s": round(pandas_s, 3),
        "pandas_rows_per_s": round(rows / pandas_s),
    }

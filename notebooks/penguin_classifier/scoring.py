"""The scoring job's input, read and checked: notebook 07's bookkeeping, so that a value the model
cannot take stops the run with one line before anything is scored.

:func:`read_input` reads the lab's columns (``Island``, ``CulmenLength``, ``CulmenDepth``,
``FlipperLength``, ``BodyMass``; optionally ``Species`` labels 0/1/2) from a CSV file or a
table; :func:`parse` types them, null where missing, and names in ``_problem`` what is there
but wrong; :func:`check` refuses the input when any row has a problem; :func:`model_udf` is
the model as a Spark function, which the notebook applies to the complete rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from .errors import PenguinInputError
from .features import INPUTS, LABEL, MEASUREMENT, MEASUREMENTS, MISSING, is_measurement
from .predict import classify_frame, probability_column

# Rows per Arrow batch that Spark hands the model's Python workers (its default is 10,000):
# each batch costs a pandas frame and its checks, more than the network's arithmetic on 10,000
# rows; 100,000 rows of the lab's columns are a few MB.
ARROW_BATCH_ROWS = 100_000


def read_input(spark: SparkSession, source: str) -> DataFrame:
    """A CSV file with a header (a path: it has a ``/`` or ends in ``.csv``) or a table."""
    csv = "/" in source or source.endswith(".csv")
    local = "://" not in source and not source.startswith("dbfs:")
    if csv and local and not Path(source).is_file():
        raise PenguinInputError(f"input {source} not found")
    try:
        data = spark.read.csv(source, header=True) if csv else spark.table(source)
    except AnalysisException as error:  # no such table or path, a name the catalog cannot hold
        raise PenguinInputError(f"input {source}: {str(error).strip().splitlines()[0]}") from None
    missing = [c for c in INPUTS if c not in data.columns]
    if missing:
        raise PenguinInputError(f"input {source}: missing columns {missing}; expected {INPUTS}")
    return data


def text(column: str) -> Column:
    return F.trim(F.col(column).cast("string"))


def problem(wrong: Column, column: str, rule: str, name: str | None = None) -> Column:
    """``"<name> '<value>' <rule>"`` where the value is there and ``wrong`` holds, else null;
    ``name``: ``column``. ``column`` is a value as :func:`parse` first reads it (trimmed text,
    null when missing)."""
    said = F.concat(F.lit(f"{name or column} '"), F.col(column), F.lit(f"' {rule}"))
    return F.when(F.col(column).isNotNull() & wrong, said)


def parse(data: DataFrame, spec: dict) -> DataFrame:
    """The lab's columns typed, null where missing, and ``_problem``: why a row cannot be scored.

    Missing is null, empty, ``NA`` or ``NaN`` (as 01_ingest reads them); ``_problem`` names the
    first value that is there but wrong, by the model's features spec ``spec``: an island not
    in its vocabulary, a measurement that breaks :func:`features.is_measurement`, a label that
    is not the index of one of its species.

    Three steps, so that Spark trims and casts each value once a row (it keeps a column that a
    later step reads several times; one expression would repeat the cast in every test of it).
    """
    names = [c for c in [*INPUTS, LABEL] if c in data.columns]
    given = data.select(*(F.when(~text(c).isin(*MISSING), text(c)).alias(c) for c in names))
    # try_cast: null when the text is not a number (Spark 3.2+, ANSI mode too).
    kinds = {**dict.fromkeys(MEASUREMENTS, "DOUBLE"), LABEL: "INT"}
    numbers = [F.expr(f"try_cast(`{c}` AS {kinds[c]})").alias(f"_{c}") for c in names if c in kinds]
    values = given.select("*", *numbers)
    islands, top = spec["islands"], len(spec["species"]) - 1
    rule = f"is not in the saved vocabulary {islands}"
    problems = [problem(~F.col("Island").isin(*islands), "Island", rule, "island")]
    columns = [F.col("Island")]
    for c in MEASUREMENTS:
        number = F.col(f"_{c}")
        problems.append(
            problem(number.isNull() | ~is_measurement(number), c, f"is not {MEASUREMENT}")
        )
        columns.append(number.alias(c))
    if LABEL in names:
        label = F.col(f"_{LABEL}")
        wrong = label.isNull() | (label < 0) | (label > top)
        problems.append(problem(wrong, LABEL, f"is not 0 to {top}"))
        columns.append(label.alias(LABEL))
    return values.select(*columns, F.coalesce(*problems).alias("_problem"))


def check(typed: DataFrame, source: str) -> None:
    """Refuse, in one line, input with a value the model cannot take (one Spark job), naming
    the first such row as serving names a request's: ``record 6`` is the input's sixth row."""
    found = typed.agg(F.count("_problem").alias("n")).first()
    if found["n"]:
        at = typed.select("_problem", F.monotonically_increasing_id().alias("_at"))  # read order
        numbered = at.select("_problem", F.row_number().over(Window.orderBy("_at")).alias("n"))
        first = numbered.where("_problem IS NOT NULL").orderBy("n").first()
        rows = "1 row" if found["n"] == 1 else f"{found['n']} rows"
        raise PenguinInputError(
            f"input {source}: {rows} cannot be scored; record {first['n']}, {first['_problem']}"
        )


def model_udf(model):
    """The loaded pyfunc ``model`` as a Spark function of the lab's columns (``INPUTS``, typed as
    :func:`parse` types them): a struct of ``species`` and one ``probability_<species>`` each.

    An iterator pandas UDF: a Python worker takes the model's network and features spec once a
    task, then answers each batch of rows that Arrow hands over as the pyfunc does, with
    :func:`predict.classify_frame`. So the workers import torch and this package but not MLflow
    (seconds a worker), and no schema check runs a batch: the notebook checked every value.
    """
    classifier = model.unwrap_python_model()  # penguin_classifier.pyfunc_model, loaded
    network, spec = classifier.model, classifier.spec
    fields = [StructField("species", StringType())]
    fields += [StructField(probability_column(s), DoubleType()) for s in spec["species"]]

    @F.pandas_udf(StructType(fields))
    def predict(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
        import torch

        torch.set_num_threads(1)  # a worker per core
        for columns in batches:
            yield classify_frame(network, pd.concat(columns, axis=1, keys=INPUTS), spec)

    return predict

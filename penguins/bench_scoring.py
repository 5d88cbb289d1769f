"""``penguins bench --scoring``: rows per second scoring with Spark against one pandas call."""

from __future__ import annotations

import statistics
import time

import mlflow
import numpy as np
import pandas as pd
from penguin_classifier.features import INPUTS, MEASUREMENTS
from penguin_classifier.predict import probability_column
from penguin_classifier.registry import load_pyfunc
from penguin_classifier.runtime import shipped_data
from pyspark.sql import DataFrame, SparkSession


def bench_scoring(spark: SparkSession, rows: int, model_uri: str, repeat: int = 3) -> dict:
    """Rows per second: scoring ``rows`` penguins with Spark, and in one pandas call.

    The rows repeat the shipped data's complete rows. Spark's side is timed on a cached
    DataFrame written to Spark's ``noop`` sink (the scoring of notebook 07, without reading or
    writing files), after a warm-up that starts the Python workers and loads the model in each
    (timed apart). Each side runs ``repeat`` times; the medians count.
    """
    model, spec = load_pyfunc(model_uri)
    complete = pd.read_csv(shipped_data()).dropna()[INPUTS]
    complete = complete.astype({c: "float64" for c in MEASUREMENTS})
    frame = complete.iloc[np.arange(rows) % len(complete)].reset_index(drop=True)
    data = spark.createDataFrame(frame).cache()
    data.count()
    partitions = data.rdd.getNumPartitions()
    # As notebook 07 declares it: the model's output columns, as Spark types.
    outputs = ["species string", *(f"{probability_column(s)} double" for s in spec["species"])]
    predict = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=", ".join(outputs), env_manager="local"
    )

    def spark_scoring(df: DataFrame) -> float:
        start = time.perf_counter()
        df.select(predict(*INPUTS)).write.format("noop").mode("overwrite").save()
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

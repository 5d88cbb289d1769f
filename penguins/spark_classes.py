"""``python -m penguins.spark_classes [ARCHIVE]``: the class-data archive local Spark starts from.

A JVM started with ``-XX:ArchiveClassesAtExit`` writes, as it ends, the classes it loaded into
an archive that later JVMs map instead of loading them again (Java's dynamic class-data
sharing). This one runs the kinds of Spark work the stages do (a CSV read, typed columns
cached and checked, a pandas UDF, a Parquet write and read, a join, groupBy, pandas in and
out), then ends its JVM and keeps the archive. ``make`` runs it once after installing; the
archive goes where :func:`runtime.spark_classes` looks, unless ``ARCHIVE`` says otherwise.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd
from penguin_classifier.runtime import local_spark, shipped_data, spark_classes
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

QUIET = "-Xlog:cds=error -Xlog:cds+dynamic=error"  # not a warning for each class it skips


def stage_work(spark: SparkSession, folder: Path) -> None:
    raw = spark.read.csv(str(shipped_data()), header=True)
    raw.limit(5).collect()
    numbers = [F.expr(f"try_cast({c} AS DOUBLE)").alias(c) for c in ("CulmenLength", "BodyMass")]
    typed = raw.select(F.trim("Island").alias("Island"), *numbers).cache()
    typed.agg(F.count("*"), F.first("Island", True)).first()

    @F.pandas_udf("double")
    def twice(values: pd.Series) -> pd.Series:
        return values * 2

    scored = typed.where("BodyMass IS NOT NULL").withColumn("twice", twice("BodyMass"))
    missing = typed.where("BodyMass IS NULL")
    scored.unionByName(missing, allowMissingColumns=True).write.parquet(str(folder / "scored"))
    written = spark.read.parquet(str(folder / "scored"))
    written.groupBy("Island").agg(F.count("*"), F.sum("twice")).collect()
    counts = written.groupBy("Island").count()
    back = spark.createDataFrame(written.join(counts, "Island").toPandas())
    back.randomSplit([0.7, 0.3], seed=0)[0].count()


def build(archive: Path) -> None:
    """Write ``archive`` (through a ``.partial`` file beside it, so that no JVM maps half)."""
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    spark = local_spark("penguins-spark-classes", f"-XX:ArchiveClassesAtExit={partial} {QUIET}")
    with tempfile.TemporaryDirectory(prefix="penguins-spark-classes-") as folder:
        stage_work(spark, Path(folder))
    jvm = spark.sparkContext._gateway.proc  # the JVM process pyspark started
    spark.stop()
    jvm.stdin.close()  # pyspark's JVM ends when its input does; it writes the archive first
    jvm.wait()
    partial.replace(archive)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else spark_classes())

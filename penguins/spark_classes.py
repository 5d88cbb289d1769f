"""``python -m penguins.spark_classes [ARCHIVE]``: the class-data archive local Spark starts from.

A JVM started with ``-XX:ArchiveClassesAtExit`` writes, as it ends, the classes it loaded into
an archive that later JVMs map instead of loading them again (Java's dynamic class-data
sharing). This one runs the kinds of Spark work the stages do (a CSV read, typed columns
cached and checked, a pandas UDF, a Parquet write and read, a join, groupBy, pandas in and
out), then ends its JVM and keeps the archive, then its record beside it (size, mtime, sha256:
:func:`runtime.class_sharing` maps no archive but the recorded one). ``make`` runs it once after
installing; the archive goes where :func:`runtime.spark_classes` looks, unless ``ARCHIVE`` says
otherwise. A folder that is not there or cannot take the archive (a full disk) is one line,
exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.records import sha256
from penguin_classifier.runtime import class_record, local_spark, shipped_data, spark_classes
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

QUIET = "-Xlog:cds=error -Xlog:cds+dynamic=error"  # not a warning for each class it skips
# The first 4 bytes of a dynamic and of a static archive (0xf00baba8, 0xf00baba2, little-endian).
ARCHIVE_MAGIC = (bytes.fromhex("a8ab0bf0"), bytes.fromhex("a2ab0bf0"))


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


def is_class_archive(path: Path) -> bool:
    """Whether ``path`` is a file that starts as a JVM's class-data archive does."""
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return file.read(4) in ARCHIVE_MAGIC


def build(archive: Path) -> None:
    """Write ``archive``: into a new ``.partial`` file beside it, so that no JVM maps half, then
    in its place, then its record. Refuses to replace a file that is not a class-data archive."""
    if not archive.parent.is_dir():
        raise PenguinInputError(f"{archive.parent} is not a folder; the archive goes into one")
    if archive.exists() and not is_class_archive(archive):
        raise PenguinInputError(f"{archive} is not a class-data archive; will not replace it")
    handle, name = tempfile.mkstemp(
        prefix=f".{archive.name}-", suffix=".partial", dir=archive.parent
    )
    os.close(handle)
    partial = Path(name)  # made here, so ours to remove
    try:
        spark = local_spark("penguins-spark-classes", f"-XX:ArchiveClassesAtExit={partial} {QUIET}")
        with tempfile.TemporaryDirectory(prefix="penguins-spark-classes-") as folder:
            stage_work(spark, Path(folder))
        jvm = spark.sparkContext._gateway.proc  # the JVM process pyspark started
        spark.stop()
        jvm.stdin.close()  # pyspark's JVM ends when its input does; it writes the archive first
        status = jvm.wait()  # a JVM that cannot write the archive removes it and says so
        if status != 0 or not is_class_archive(partial):
            free = shutil.disk_usage(archive.parent).free >> 20
            raise PenguinInputError(
                f"the JVM could not write a class-data archive into {archive.parent} "
                f"(exit status {status}; {free} MiB free there)"
            )
        stat = partial.stat()
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256(partial)}
        partial.replace(archive)  # keeps its mtime
        class_record(archive).write_text(json.dumps(record) + "\n")  # after the archive
    finally:
        partial.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    archive = Path(argv[0]) if argv else spark_classes()
    try:
        build(archive)
    except PenguinInputError as error:
        print(f"penguins.spark_classes: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # writing into the folder failed (a full disk, no permission)
        if error.filename is None:
            raise
        print(f"penguins.spark_classes: {error.strerror}: {error.filename}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

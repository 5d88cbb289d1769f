"""How local Spark starts: from the class-data archive ``make`` builds."""

from __future__ import annotations

import os
import subprocess
import sys

from penguin_classifier.runtime import class_sharing

START_SPARK = """
import sys
from pathlib import Path
from penguin_classifier.runtime import class_sharing, local_spark
local_spark(java_options=class_sharing(Path(sys.argv[1]))).range(3).count()
"""


def test_spark_maps_the_classes_of_the_archive_built_for_it(local_disk):
    archive = local_disk / "spark-classes.jsa"
    build = [sys.executable, "-m", "penguins.spark_classes", str(archive)]
    subprocess.run(build, check=True, capture_output=True)
    assert archive.is_file()
    assert [p.name for p in local_disk.iterdir()] == ["spark-classes.jsa"]  # no .partial left
    # Java names, for each class it loads, where it came from.
    log = local_disk / "classes.log"
    env = {**os.environ, "JDK_JAVA_OPTIONS": f"-Xlog:class+load:file={log}"}
    start = [sys.executable, "-c", START_SPARK, str(archive)]
    subprocess.run(start, check=True, capture_output=True, env=env)
    assert "org.apache.spark.SparkContext source: shared objects file (top)" in log.read_text()


def test_without_the_archive_spark_starts_as_usual(local_disk):
    assert class_sharing(local_disk / "missing.jsa") == ""


def test_the_builder_refuses_to_replace_a_file_that_is_not_an_archive(local_disk):
    mine = local_disk / "spark-classes.jsa"
    mine.write_text("mine")
    build = [sys.executable, "-m", "penguins.spark_classes", str(mine)]
    done = subprocess.run(build, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"penguins.spark_classes: {mine} is not a class-data archive; will not replace it"
    ]
    assert mine.read_text() == "mine"
    assert [p.name for p in local_disk.iterdir()] == ["spark-classes.jsa"]

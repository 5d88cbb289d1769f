"""How local Spark starts: from the class-data archive ``make`` builds, and only the one its
record describes; a stage whose Spark crashes keeps its last commit; the builder refuses, in one
line, a place that cannot take the archive."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from penguin_classifier.lab import Lab
from penguin_classifier.runtime import class_record, class_sharing

import penguins.spark_classes
from penguins.cli import main

START_SPARK = """
import sys
from pathlib import Path
from penguin_classifier.runtime import class_sharing, local_spark
local_spark(java_options=class_sharing(Path(sys.argv[1]))).range(3).count()
"""


def start_spark(archive: Path, **kwargs) -> subprocess.CompletedProcess:
    """A local SparkSession and one job, in a new process, with :func:`class_sharing` of
    ``archive``; run in the archive's folder, where a crashing JVM leaves its hs_err log."""
    start = [sys.executable, "-c", START_SPARK, str(archive)]
    return subprocess.run(start, capture_output=True, text=True, cwd=archive.parent, **kwargs)


@pytest.fixture(scope="module")
def built():
    """An archive and its record, built once by ``python -m penguins.spark_classes ARCHIVE``,
    on local disk; read-only: copy it before changing it."""
    with tempfile.TemporaryDirectory(prefix="penguins-test-classes-") as folder:
        archive = Path(folder) / "spark-classes.jsa"
        build = [sys.executable, "-m", "penguins.spark_classes", str(archive)]
        subprocess.run(build, check=True, capture_output=True)
        yield archive


def copy_of(archive: Path, folder: Path) -> Path:
    """``archive`` and its record, copied into ``folder`` (the copy gets a new mtime)."""
    copy = folder / archive.name
    shutil.copyfile(archive, copy)
    shutil.copyfile(class_record(archive), class_record(copy))
    return copy


def test_spark_maps_the_classes_of_the_archive_built_for_it(built, local_disk):
    # The archive, then its record; no .partial left.
    assert sorted(p.name for p in built.parent.iterdir()) == [
        "spark-classes.jsa",
        "spark-classes.jsa.json",
    ]
    record = json.loads(class_record(built).read_text())
    assert (record["size"], record["mtime_ns"]) == (built.stat().st_size, built.stat().st_mtime_ns)
    # Java names, for each class it loads, where it came from.
    log = local_disk / "classes.log"
    env = {**os.environ, "JDK_JAVA_OPTIONS": f"-Xlog:class+load:file={log}"}
    assert start_spark(built, env=env).returncode == 0
    assert "org.apache.spark.SparkContext source: shared objects file (top)" in log.read_text()


def test_a_truncated_archive_is_left_out_and_spark_starts_without_it(built, local_disk):
    truncated = copy_of(built, local_disk)
    os.truncate(truncated, 50 << 20)  # a copy cut short: once a SIGBUS in every JVM mapping it
    assert class_sharing(truncated) == ""
    started = start_spark(truncated)
    assert started.returncode == 0, started.stderr
    assert "SIGBUS" not in started.stdout + started.stderr
    assert not list(local_disk.glob("hs_err_pid*.log"))  # no JVM crashed


def test_a_spark_that_crashes_leaves_the_last_commit_of_prepared(
    spark, built, local_disk, tmp_path, capsys
):
    lab = Lab(tmp_path / "lab")
    assert main(["run", "--only", "ingest,prepare", "--lab-dir", str(lab.root)]) == 0
    committed = lab.require("prepared")
    # Every JVM of the next run maps a truncated archive (the JDK's own variable, read by every
    # java): it dies of SIGBUS as it starts, as on 7eca39d with a truncated spark-classes.jsa.
    truncated = copy_of(built, local_disk)
    os.truncate(truncated, 50 << 20)
    env = {**os.environ, "JDK_JAVA_OPTIONS": f"-XX:SharedArchiveFile={truncated}"}
    run = [sys.executable, "-m", "penguins.cli", "run", "--only", "prepare"]
    done = subprocess.run(
        [*run, "--lab-dir", str(lab.root)], capture_output=True, cwd=local_disk, env=env
    )
    assert done.returncode != 0
    assert list(local_disk.glob("hs_err_pid*.log"))  # the JVM did crash
    assert lab.require("prepared") == committed  # still there, whole, and the same commit


def change_one_byte(archive: Path) -> None:
    """The same size, one byte different."""
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(data)


@pytest.mark.parametrize(
    ("change", "mapped"),
    [
        # A copy: a new mtime, so the sha256 is computed again, and it is the recorded one.
        (lambda archive: None, True),
        (lambda archive: os.truncate(archive, 50 << 20), False),  # not the recorded size
        (change_one_byte, False),  # the recorded size, another sha256
        (lambda archive: class_record(archive).unlink(), False),  # no record
        (lambda archive: class_record(archive).write_text("[1, 2]"), False),  # not a record
        (lambda archive: class_record(archive).write_text('{"size": "1"}'), False),
        (lambda archive: archive.unlink(), False),  # a record without its archive
    ],
)
def test_only_the_recorded_archive_is_mapped(built, local_disk, change, mapped):
    copy = copy_of(built, local_disk)
    change(copy)
    assert class_sharing(copy) == (
        f"-XX:SharedArchiveFile={copy} -Xlog:cds=off -Xlog:cds+dynamic=off" if mapped else ""
    )


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


def no_space(*args, dir, **kwargs):  # noqa: A002 (tempfile.mkstemp's name)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{dir}/.spark-classes.jsa-x.partial")


@pytest.mark.parametrize(
    ("folder", "mkstemp", "message"),
    [
        ("missing", None, "{folder} is not a folder; the archive goes into one"),
        # A full disk that cannot take even the new empty file.
        (".", no_space, "No space left on device: {folder}/.spark-classes.jsa-x.partial"),
    ],
)
def test_a_folder_that_cannot_take_the_archive_is_one_line(
    local_disk, monkeypatch, capsys, folder, mkstemp, message
):
    folder = local_disk / folder
    if mkstemp:
        monkeypatch.setattr(penguins.spark_classes.tempfile, "mkstemp", mkstemp)
    assert penguins.spark_classes.main([str(folder / "spark-classes.jsa")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"penguins.spark_classes: {message.format(folder=folder)}"
    ]
    assert list(local_disk.iterdir()) == []


# The builder with no Spark work: the JVM still writes the classes it loaded to start.
BUILD_AT_ONCE = """
import sys
import penguins.spark_classes as spark_classes
spark_classes.stage_work = lambda spark, folder: None
sys.exit(spark_classes.main(sys.argv[1:]))
"""


def at_most_1_mib_a_file():
    """As a full disk does, writes past 1 MiB fail (EFBIG, where the signal is ignored)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_an_archive_the_jvm_cannot_write_is_one_line(local_disk):
    archive = local_disk / "spark-classes.jsa"
    build = [sys.executable, "-c", BUILD_AT_ONCE, str(archive)]
    done = subprocess.run(
        build, capture_output=True, text=True, cwd=local_disk, preexec_fn=at_most_1_mib_a_file
    )
    assert done.returncode == 2, done.stderr
    # The JVM says why before it ends (its own lines), then the builder, in one line.
    assert "Unable to write to shared archive file." in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        "penguins.spark_classes: the JVM could not write a class-data archive into "
        f"{local_disk} (exit status 1; "
    ), done.stderr
    assert list(local_disk.iterdir()) == []  # no .partial, no archive, no record

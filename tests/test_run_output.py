"""What a learner reads from ``make run`` and ``make clean``: no Spark log banner, each cell's time
once after the last task, and what ``make clean`` leaves."""

from __future__ import annotations

import re
import subprocess
import sys

from penguin_classifier.runtime import project_root

from penguins.cli import main
from penguins.runner import notebook_cells

ROOT = project_root()
CELL_TIME = re.compile(r"^  +\d+\.\d\d s  (.+)$")


def test_penguins_run_prints_each_cells_time_once_after_the_last_task(spark, tmp_path, capsys):
    assert main(["run", "--only", "ingest,prepare", "--lab-dir", str(tmp_path / "lab")]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out.index("===== time per cell =====")
    # The stages print their own output and one line each when done; the times come after both.
    done = [i for i, line in enumerate(out) if line.startswith("----- ")]
    assert [out[i].split(" done in ")[0] for i in done] == ["----- ingest", "----- prepare"]
    assert max(done) < table
    assert not any(CELL_TIME.match(line) for line in out[:table])
    # Then every cell of each notebook by its title, in order, and the summary.
    summary = out.index("===== summary =====")
    expected = []
    for key, notebook in (("ingest", "01_ingest.py"), ("prepare", "02_prepare.py")):
        expected += [key, *(cell.title for cell in notebook_cells(ROOT / "notebooks" / notebook))]
    printed = [
        CELL_TIME.match(line)[1] if CELL_TIME.match(line) else line.split(" (")[0]
        for line in out[table + 1 : summary - 1]
    ]
    assert printed == expected
    assert out[summary - 1] == ""


# Spark's own lines at a JVM's start with its default log configuration (the JVM's own
# "WARNING: Using incubator modules" is not Spark's, and stays).
BANNER = ("log4j profile", "Setting default log level", "NativeCodeLoader", " WARN ")

START_SPARK = """
from penguin_classifier.runtime import local_spark
spark = local_spark()
spark.range(3).count()
spark.sparkContext._jvm.org.apache.log4j.Logger.getLogger("penguins").error("still said")
"""


def test_local_spark_starts_without_the_log_banner_and_still_logs_errors(local_disk):
    started = subprocess.run(
        [sys.executable, "-c", START_SPARK], capture_output=True, text=True, cwd=local_disk
    )
    assert started.returncode == 0, started.stderr
    assert not [line for line in started.stderr.splitlines() if any(b in line for b in BANNER)]
    assert "ERROR penguins: still said" in started.stderr  # errors are not silenced


def test_make_clean_removes_the_lab_and_says_it_keeps_mlruns(local_disk):
    for folder in ("lab/raw", "mlruns/artifacts"):
        (local_disk / folder).mkdir(parents=True)
    make = ["make", "-s", "-f", str(ROOT / "Makefile"), "clean"]
    done = subprocess.run(make, capture_output=True, text=True, cwd=local_disk, check=True)
    assert done.stdout.splitlines() == [
        "kept mlruns/ (MLflow: runs, registered models); rm -rf mlruns to remove them too"
    ]
    assert [p.name for p in local_disk.iterdir()] == ["mlruns"]
    assert (local_disk / "mlruns" / "artifacts").is_dir()

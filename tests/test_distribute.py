"""Stage 6: distributed training with Horovod and TorchDistributor.

The logic around the launch is tested without processes; a few bounded end-to-end runs launch
2 real processes on the local SparkSession (few epochs, each run stopped after a timeout).
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
import types

import pytest
from penguin_classifier import distribute
from penguin_classifier.distribute import (
    Launch,
    check_num_processes,
    choose_launch,
    distribute_stage,
    importable_by_workers,
    launch_ranks,
    rank_error,
    run_with_timeout,
)
from penguin_classifier.errors import PenguinInputError, PenguinRunError
from penguin_classifier.layout import read_json
from penguin_classifier.model import load_model
from penguin_classifier.rank_training import load_shard
from penguin_classifier.train import fit, load_split

EPOCHS = 10  # enough for >= 0.97 on both sides, short enough for the test suite


def rank_1_fails(job):
    """A per-rank function whose rank 1 appends to a file in the lab folder before training: on
    a volume that fails (the test's volume rules hold in every rank), as a broken worker would."""
    from pathlib import Path

    from penguin_classifier.rank_training import train_rank_horovod, train_rank_torch

    horovod = "HOROVOD_RANK" in os.environ
    if os.environ.get("HOROVOD_RANK", os.environ.get("RANK")) == "1":
        with open(Path(job["lab_dir"], "rank-1.log"), "a") as log:
            log.write("starting\n")
    return (train_rank_horovod if horovod else train_rank_torch)(job)


def ship_this_module_by_value():
    """Worker processes cannot import this test module: send its functions by value."""
    import cloudpickle
    import pyspark.cloudpickle

    for module in (cloudpickle, pyspark.cloudpickle):
        module.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def single_accuracy(lab):
    """Held-out accuracy of single-process training at the same settings (EPOCHS)."""
    spec = read_json(lab.features)
    model = load_model(lab.model_config, lab.initial_weights)
    train = load_split(lab.train, spec["features"], spec["label"])
    test = load_split(lab.test, spec["features"], spec["label"])
    return fit(model, train, test, epochs=EPOCHS, log=None)[-1].val_accuracy


# --- the logic around the launch, no processes -------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "databricks", "has_horovod", "has_sparkdl", "expected"),
    [
        ("auto", False, True, False, Launch("horovod", "horovod.spark.run")),
        ("auto", False, False, False, Launch("torch", "TorchDistributor")),
        ("auto", True, True, True, Launch("horovod", "HorovodRunner")),
        # Databricks ML 16+ has neither Horovod nor sparkdl: auto falls back to TorchDistributor.
        ("auto", True, False, False, Launch("torch", "TorchDistributor")),
        ("horovod", True, True, True, Launch("horovod", "HorovodRunner")),
        ("horovod", True, True, False, Launch("horovod", "horovod.spark.run")),
        ("torch", True, True, True, Launch("torch", "TorchDistributor")),
    ],
)
def test_backend_choice(backend, databricks, has_horovod, has_sparkdl, expected):
    chosen = choose_launch(
        backend, databricks=databricks, has_horovod=has_horovod, has_sparkdl=has_sparkdl
    )
    assert chosen == expected


@pytest.mark.parametrize(
    ("backend", "has_horovod", "message"),
    [
        ("mpi", True, r"parameter backend: 'mpi' is not one of \['auto', 'horovod', 'torch'\]"),
        ("horovod", False, r"backend horovod: horovod is not installed .* or use backend=torch"),
    ],
)
def test_backend_errors(backend, has_horovod, message):
    with pytest.raises(PenguinInputError, match=message):
        choose_launch(backend, databricks=False, has_horovod=has_horovod, has_sparkdl=False)


@pytest.mark.parametrize(
    ("num_processes", "slots", "cores", "launch", "local_mode", "message"),
    [
        (0, 2, 8, Launch("torch", "TorchDistributor"), True, "num_processes: 0 is below 1"),
        (3, 2, 8, Launch("horovod", "horovod.spark.run"), True, "3 processes need 3 Spark task"),
        (3, 2, 8, Launch("torch", "TorchDistributor"), False, "this cluster has 2"),
        (3, 2, 8, Launch("torch", "TorchDistributor"), True, None),  # local mode: the cores
        (4, 2, 8, Launch("horovod", "HorovodRunner"), True, None),  # np=-4: driver processes
        (4, 8, 2, Launch("horovod", "HorovodRunner"), False, None),  # np=4: the workers' slots
        (4, 2, 8, Launch("horovod", "HorovodRunner"), False, "this cluster has 2"),  # np=4
        # Processes on the driver: one core each (64 on 2 cores once ran 334 s, then timed out).
        (
            64, 2, 2, Launch("torch", "TorchDistributor"), True,
            r"^parameter num_processes: 64 processes need 64 cores, the driver has 2$",
        ),
        (4, 8, 2, Launch("horovod", "HorovodRunner"), True, "the driver has 2"),  # np=-4
    ],
)  # fmt: skip
def test_process_count_checks(num_processes, slots, cores, launch, local_mode, message):
    if message is None:
        check_num_processes(num_processes, slots, cores, launch, local_mode)
    else:
        with pytest.raises(PenguinInputError, match=message):
            check_num_processes(num_processes, slots, cores, launch, local_mode)


def test_horovod_runner_runs_np_minus_n_on_the_driver_and_n_on_workers(monkeypatch):
    calls = []

    class HorovodRunner:
        def __init__(self, np, driver_log_verbosity):
            calls.append(("init", np, driver_log_verbosity))

        def run(self, main, **kwargs):
            calls.append(("run", main, kwargs))
            return {"from": "rank 0"}

    monkeypatch.setitem(sys.modules, "sparkdl", types.SimpleNamespace(HorovodRunner=HorovodRunner))
    job = {"epochs": 1}
    result = launch_ranks(Launch("horovod", "HorovodRunner"), print, job, 3, local_mode=True)
    assert result == {"from": "rank 0"}
    # On a cluster with workers (the bundle's scale target): np=3, processes on the workers.
    launch_ranks(Launch("horovod", "HorovodRunner"), print, job, 3, local_mode=False)
    assert [c[:2] for c in calls] == [("init", -3), ("run", print), ("init", 3), ("run", print)]


def test_rank_error_prefers_the_ranks_own_lines(tmp_path):
    (tmp_path / "rank-1.error").write_text("rank 1: ValueError: bad shard\n")
    assert rank_error(tmp_path, RuntimeError("see logs")) == "rank 1: ValueError: bad shard"


def test_rank_error_falls_back_to_the_launchers_last_error_line(tmp_path):
    output = "Traceback (most recent call last):\n  File x\nKeyError: 'Species'\nexit 1"
    assert rank_error(tmp_path, RuntimeError(output)) == "KeyError: 'Species'"
    assert rank_error(tmp_path, OSError("disk full\nmore")) == "OSError: disk full"


def test_workers_get_the_package_on_their_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    import penguin_classifier

    parent = os.path.dirname(os.path.dirname(penguin_classifier.__file__))
    with importable_by_workers():
        assert os.environ["PYTHONPATH"].split(os.pathsep) == [parent, "/elsewhere"]
    assert os.environ["PYTHONPATH"] == "/elsewhere"


def test_a_run_past_its_timeout_is_stopped():
    stopped = threading.Event()

    def hangs():
        if not stopped.wait(10):
            return "finished"
        raise RuntimeError("killed by the watchdog")

    start = time.perf_counter()
    with pytest.raises(PenguinRunError, match=r"did not finish within 0 s; stopped"):
        run_with_timeout(hangs, 0.2, stopped.set)
    assert time.perf_counter() - start < 5
    assert run_with_timeout(lambda: 42, 5, stopped.set) == 42


def test_each_rank_trains_on_its_own_shard(lab):
    shards = [load_shard(lab, rank, 3, batch_size=20)[1].tolist() for rank in range(3)]
    # 960 rows over 3 ranks: 320 each, every row in exactly one shard (no padding repeats).
    assert [len(s) for s in shards] == [320, 320, 320]
    assert sorted(sum(shards, [])) == list(range(960))


def test_a_non_finite_final_loss_stops_the_stage_before_it_commits(tmp_lab, spark, monkeypatch):
    # Ranks whose weights blew up (say lr=1e30) still finish; their mean loss is NaN.
    weights = tmp_lab.distributed_weights.read_bytes()
    result = {"weights": weights, "train_loss": float("nan"), "train_s": 1.0, "shard_rows": 480}
    monkeypatch.setattr(distribute, "launch_ranks", lambda *args: result)
    with pytest.raises(PenguinInputError, match=r"^epoch 10: the loss is nan, the weights are no"):
        distribute_stage(tmp_lab, spark, "torch", 2, epochs=10, log=lambda *_: None)
    with pytest.raises(PenguinInputError, match="run 06_distribute first"):
        tmp_lab.require("distributed")


def test_stage_needs_the_evaluation_first(tmp_lab, spark):
    tmp_lab.evaluation.unlink()
    with pytest.raises(
        PenguinInputError, match="evaluation.json is missing: run 05_evaluate again"
    ):
        distribute_stage(tmp_lab, spark, backend="torch")


# --- real runs: 2 processes on the local SparkSession ---------------------------------------------


@pytest.mark.parametrize(
    ("backend", "local_mode"),
    [("horovod", True), ("torch", True), ("torch", False)],
    ids=["horovod.spark.run", "TorchDistributor-local", "TorchDistributor-barrier"],
)
def test_two_processes_train_and_commit_the_model(
    tmp_lab, spark, single_accuracy, backend, local_mode
):
    summary = distribute_stage(
        tmp_lab, spark, backend, 2, epochs=EPOCHS, local_mode=local_mode, timeout_s=180,
        log=lambda *_: None,
    )  # fmt: skip
    assert summary["shard_rows"] == 480  # 960 training rows, 2 ranks
    assert summary["backend"] == backend and summary["num_processes"] == 2
    # Rank 0's saved model is within 1 point (one test row in 102 is 0.98 points) of one process.
    assert abs(summary["accuracy"] - single_accuracy) <= 0.01
    assert read_json(tmp_lab.distributed_metrics) == summary
    tmp_lab.require("distributed")  # committed: every file is there and whole
    assert not list(tmp_lab.distributed_weights.parent.glob("_run-*"))


# horovod.spark.run's own thread ends with the failed Spark job: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_a_failing_rank_fails_the_run_in_one_line_and_leaves_no_model(tmp_lab, spark, backend):
    ship_this_module_by_value()
    start = time.perf_counter()
    with pytest.raises(PenguinRunError) as raised:
        distribute_stage(
            tmp_lab, spark, backend, 2, epochs=EPOCHS, timeout_s=120, start_timeout_s=10,
            rank_fn=rank_1_fails, log=lambda *_: None,
        )  # fmt: skip
    launcher = "TorchDistributor" if backend == "torch" else "horovod.spark.run"
    assert str(raised.value).startswith(
        f"{launcher} failed: rank 1: OSError: [Errno {errno.EOPNOTSUPP}] volumes do not support "
        "appends or updates in place"
    )
    assert time.perf_counter() - start < 60  # fails fast: no waiting for the whole timeout
    assert not tmp_lab.distributed_weights.exists()
    assert not list(tmp_lab.distributed_weights.parent.glob("_run-*"))
    with pytest.raises(PenguinInputError, match="run 06_distribute first"):
        tmp_lab.require("distributed")


class RecordingSparkContext:
    """The job-group calls of a SparkContext, for one thread: its local properties, and the
    groups cancelled (a cancelled group's running job then fails, as in Spark)."""

    def __init__(self, properties: dict):
        self.properties = dict(properties)
        self.cancelled: list[str] = []
        self.job_cancelled = threading.Event()

    def getLocalProperty(self, key):
        return self.properties.get(key)

    def setLocalProperty(self, key, value):
        if value is None:
            self.properties.pop(key, None)
        else:
            self.properties[key] = value

    def setJobGroup(self, group, description, interruptOnCancel=False):
        self.properties["spark.jobGroup.id"] = group
        self.properties["spark.job.description"] = description
        self.properties["spark.job.interruptOnCancel"] = str(interruptOnCancel).lower()

    def cancelJobGroup(self, group):
        self.cancelled.append(group)
        self.job_cancelled.set()

    def cancelAllJobs(self):
        self.cancelled.append("every job on the cluster")
        self.job_cancelled.set()


def test_a_timeout_cancels_only_the_runs_own_spark_jobs():
    from penguin_classifier.distribute import spark_job_group, stop_workers

    # On Databricks the notebook command's own group is set on the thread before the stage runs.
    sc = RecordingSparkContext({"spark.jobGroup.id": "notebook-command"})
    started = {}

    def launch():  # a Spark job takes the properties of the thread that starts it
        started.update(sc.properties)
        if sc.job_cancelled.wait(10):
            raise RuntimeError("job cancelled")

    with spark_job_group(sc) as group, pytest.raises(PenguinRunError, match="did not finish"):
        run_with_timeout(launch, 0.2, lambda: stop_workers(sc, group))
    assert started["spark.jobGroup.id"] == group
    assert started["spark.job.interruptOnCancel"] == "true"
    assert sc.cancelled == [group]  # not cancelAllJobs: other notebooks share the cluster
    assert sc.properties == {"spark.jobGroup.id": "notebook-command"}

"""Stage 6: distributed training with Horovod and TorchDistributor, as notebook 06 runs it.

The logic around the launch is tested without processes (the launcher choice, the notebook's own
launch and shard cells with stand-ins, the timeout and the one-line errors); a few bounded
end-to-end runs launch 2 real processes on the local SparkSession through the job runner.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import venv
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType, SimpleNamespace

import mlflow
import pytest
import torch
from penguin_classifier import launchers, tracking
from penguin_classifier.distributed_run import (
    DistributedRun,
    distributed_run,
    importable_by_driver_ranks,
    rank_error,
)
from penguin_classifier.errors import PenguinInputError, PenguinRunError
from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.launchers import Launch, check_num_processes, choose_launch
from penguin_classifier.model import load_model
from penguin_classifier.records import MANIFEST, describe, sha256
from penguin_classifier.runtime import LazySpark, project_root
from penguin_classifier.train import check_loss, recorded_optimizer
from test_bundle import library_wheel
from test_record_safety import rewrite

from penguins.cli import main, program
from penguins.jobs import local_tasks, only_tasks
from penguins.runner import notebook_cells, run_notebook, run_tasks

NOTEBOOK = project_root() / "notebooks" / "06_distribute.py"
EPOCHS = 10  # 2 ranks reach the single-process accuracy; short enough for the test suite
CORES = os.cpu_count()
# Databricks Runtime ML after 15.4 LTS has no Horovod (make test-runtime RUNTIME=16.4 or 17.3).
needs_horovod = pytest.mark.skipif(
    importlib.util.find_spec("horovod") is None,
    reason="no Horovod here: runtimes after 15.4 LTS ML have none; scripts/install_horovod.sh",
)


def run_cells(titles: list[str], **names) -> dict:
    """Execute the cells of notebook 06 with these titles, in a namespace holding ``names``
    (what the cells before them would have defined); return the namespace."""
    cells = {cell.title: cell.source for cell in notebook_cells(NOTEBOOK)}
    namespace = {"__name__": "__notebook__", **names}
    for title in titles:
        exec(compile(cells[title], str(NOTEBOOK), "exec"), namespace)
    return namespace


def distribute(lab: Lab, spark, **params: str):
    """Notebook 06 as the job runs it (``penguins run --only distribute``), EPOCHS epochs."""
    tasks = only_tasks(local_tasks(), ["distribute"])
    overrides = {"lab_dir": str(lab.root), "epochs": str(EPOCHS), **params}
    return run_tasks(tasks, overrides, spark, log=lambda *_: None)[0]


def penguins(capsys, *args: str) -> tuple[int, str]:
    """Exit status and stderr of ``penguins ARGS`` in this process."""
    status = main(list(args))
    return status, capsys.readouterr().err


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


# --- the logic around the launch, no processes -------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "databricks", "has_horovod", "has_sparkdl", "local_mode", "expected"),
    [
        # Processes on this machine: horovod.run; on the workers: in Spark tasks.
        ("auto", False, True, False, True, Launch("horovod", "horovod.run")),
        ("auto", False, True, False, False, Launch("horovod", "horovod.spark.run")),
        ("auto", False, False, False, True, Launch("torch", "TorchDistributor")),
        ("auto", True, True, True, True, Launch("horovod", "HorovodRunner")),
        ("auto", True, True, True, False, Launch("horovod", "HorovodRunner")),
        # Databricks ML 16+ has neither Horovod nor sparkdl: auto falls back to TorchDistributor.
        ("auto", True, False, False, True, Launch("torch", "TorchDistributor")),
        ("horovod", True, True, True, True, Launch("horovod", "HorovodRunner")),
        ("horovod", True, True, False, False, Launch("horovod", "horovod.spark.run")),
        ("torch", True, True, True, False, Launch("torch", "TorchDistributor")),
    ],
)
def test_backend_choice(backend, databricks, has_horovod, has_sparkdl, local_mode, expected):
    chosen = choose_launch(
        backend,
        databricks=databricks,
        has_horovod=has_horovod,
        has_sparkdl=has_sparkdl,
        local_mode=local_mode,
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
        (3, 2, 8, Launch("horovod", "horovod.spark.run"), False, "3 processes need 3 Spark task"),
        (3, 8, 2, Launch("horovod", "horovod.run"), True, "3 processes need 3 cores, the driver"),
        (3, 2, 8, Launch("horovod", "horovod.run"), True, None),  # processes, not Spark tasks
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


@pytest.mark.parametrize(("local_mode", "np"), [(True, -3), (False, 3)])
def test_the_launch_cell_runs_horovod_runner_on_the_driver_or_on_the_workers(
    tmp_path, monkeypatch, local_mode, np
):
    made = []

    class HorovodRunner:
        def __init__(self, np, driver_log_verbosity):
            made.append((np, driver_log_verbosity))

        def run(self, main, **kwargs):
            return main(**kwargs)  # the per-rank function, here in this process

    def train_hvd(job):
        return {"train_loss": 0.25, "train_s": 1.0, "shard_rows": 320, "epochs": job["epochs"]}

    monkeypatch.setattr(launchers, "HorovodRunner", HorovodRunner)
    names = run_cells(
        ["Launch the processes"],
        spark=SimpleNamespace(sparkContext=RecordingSparkContext({})),
        handover=SimpleNamespace(folder=tmp_path / "distributed"),
        launch=Launch("horovod", "HorovodRunner"), job={"epochs": EPOCHS},
        num_processes=3, local_mode=local_mode, epochs=EPOCHS, timeout_s=60,
        train_hvd=train_hvd, train_ddp=None, check_loss=check_loss,
    )  # fmt: skip
    # np=-3: 3 processes on the driver (a single node); np=3: on the worker nodes.
    assert made == [(np, "all")]
    assert names["result"]["epochs"] == EPOCHS  # the job dict reached the per-rank function
    assert list((tmp_path / "distributed").iterdir()) == []  # the run's folder is gone


def fake_launch(calls: list, name: str):
    """A launcher function recording its call and running ``fn`` here, as one rank."""

    def launch(fn, **options):
        calls.append((name, {k: v for k, v in options.items() if k in ("np", "num_proc", "hosts")}))
        return [fn(**options["kwargs"])]  # one result per rank

    return launch


@pytest.mark.parametrize(
    ("databricks", "np", "call"),
    [
        # Off Databricks: -N processes on this machine as sparkdl runs them on the driver,
        # N in Spark tasks as sparkdl runs them on the workers.
        (False, -3, ("horovod.run", {"np": 3, "hosts": "localhost:3"})),
        (False, 3, ("horovod.spark.run", {"num_proc": 3})),
        # On Databricks Runtime ML: sparkdl's own, with the notebook's arguments.
        (True, -3, ("sparkdl", {"np": -3, "driver_log_verbosity": "all"})),
    ],
)
@needs_horovod
def test_horovod_runner_is_sparkdls_on_databricks_and_horovod_elsewhere(
    monkeypatch, databricks, np, call
):
    import horovod
    import horovod.spark

    calls = []

    class SparkdlRunner:
        def __init__(self, **options):
            calls.append(("sparkdl", options))

        def run(self, main, **kwargs):
            return main(**kwargs)  # rank 0's result

    sparkdl = ModuleType("sparkdl")
    sparkdl.__spec__ = ModuleSpec("sparkdl", None)
    sparkdl.HorovodRunner = SparkdlRunner
    monkeypatch.setitem(sys.modules, "sparkdl", sparkdl)
    monkeypatch.setattr(horovod, "run", fake_launch(calls, "horovod.run"))
    monkeypatch.setattr(horovod.spark, "run", fake_launch(calls, "horovod.spark.run"))
    if databricks:
        monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    else:
        monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    runner = launchers.HorovodRunner(np=np, driver_log_verbosity="all")
    assert runner.run(lambda job: job["epochs"], job={"epochs": EPOCHS}) == EPOCHS
    assert calls == [call]


@pytest.mark.parametrize(
    "launcher", [pytest.param("HorovodRunner", marks=needs_horovod), "TorchDistributor"]
)
def test_the_launchers_report_a_failed_rank_in_one_line(tmp_path, monkeypatch, launcher):
    import pyspark.ml.torch.distributor

    class Distributor:  # pyspark's, as TorchDistributor's local mode runs a rank
        def __init__(self, **options):
            pass

        def run(self, train_object, *args):
            try:
                return train_object(*args)
            except ValueError:
                raise RuntimeError("TorchDistributor failed, see the logs") from None

    def horovod_run(fn, kwargs, **options):
        try:
            return [fn(**kwargs)]
        except ValueError:
            raise RuntimeError("Horovod detected that one or more processes exited") from None

    def broken(job):
        raise ValueError(f"bad shard of {job['rows']} rows")

    monkeypatch.setattr(pyspark.ml.torch.distributor, "TorchDistributor", Distributor)
    if launcher == "HorovodRunner":
        import horovod

        monkeypatch.setattr(horovod, "run", horovod_run)
    monkeypatch.setenv("RANK", "1")  # as the launchers set it in rank 1
    with pytest.raises(PenguinRunError) as raised:
        with distributed_run(None, tmp_path, launcher, 60):
            if launcher == "HorovodRunner":
                launchers.HorovodRunner(np=-2).run(broken, job={"rows": 480})
            else:
                launchers.TorchDistributor(num_processes=2).run(broken, {"rows": 480})
    assert str(raised.value) == f"{launcher} failed: rank 1: ValueError: bad shard of 480 rows"
    # Outside a distributed_run the function goes as it is: its error as raised.
    with pytest.raises(RuntimeError, match="see the logs"):
        launchers.TorchDistributor(num_processes=2).run(broken, {"rows": 480})


class ConnectSession:
    """Stands for a Spark Connect session (``pyspark.sql.connect.session.SparkSession``): what
    notebooks get on standard access mode and serverless compute."""


ConnectSession.__module__ = "pyspark.sql.connect.session"
CLASSIC_ONLY = (
    "06_distribute needs a classic cluster in dedicated (single user) access mode with Databricks "
    "Runtime ML: this is serverless or standard access mode compute, whose Spark Connect session "
    "has no sparkContext for HorovodRunner or TorchDistributor"
)


@pytest.mark.parametrize(
    ("runtime", "session", "refused"),
    [
        ("client.1.13", ConnectSession(), True),  # serverless: the version says so
        ("client.2.5", SimpleNamespace(sparkContext=None), True),
        ("15.4.x-cpu-ml-scala2.12", ConnectSession(), True),  # standard access mode
        ("15.4.x-cpu-ml-scala2.12", SimpleNamespace(sparkContext=None), False),  # dedicated
        (None, LazySpark(), False),  # locally (and no SparkSession started to find out)
    ],
)
def test_compute_without_a_spark_context_is_refused(monkeypatch, runtime, session, refused):
    if runtime:
        monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", runtime)
    else:
        monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    if refused:
        with pytest.raises(PenguinInputError, match=f"^{re.escape(CLASSIC_ONLY)}$"):
            launchers.check_classic_compute(session)
    else:
        launchers.check_classic_compute(session)


def test_serverless_is_refused_before_anything_is_touched(tmp_lab, capsys, monkeypatch):
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "client.1.13")
    record = tmp_lab.folder("distributed") / "_manifest.json"
    before = record.read_bytes()
    args = ["run", "--only", "distribute", "--lab-dir", str(tmp_lab.root)]
    assert penguins(capsys, *args) == (2, f"penguins run: distribute: {CLASSIC_ONLY}\n")
    assert record.read_bytes() == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("rank_function", "cell"),
    [
        pytest.param("train_hvd", "Horovod: the lab's train on each process", marks=needs_horovod),
        ("train_ddp", "DDP: the lab's train on each process, for TorchDistributor"),
    ],
)
def test_one_process_trains_exactly_as_notebook_04_with_its_optimizer(
    tmp_lab, capsys, monkeypatch, rank_function, cell
):
    # Notebook 04 with SGD (and 05 after it); then notebook 06's job and rank function in this
    # process, the only rank: the same batches, optimizer, loop and lr (× 1), so the same weights
    # but for float rounding (04's batches are slices of the file's columns, a rank's shard a
    # row-major copy: sums may differ in the last bit).
    args = ["run", "--only", "train,evaluate", "--lab-dir", str(tmp_lab.root), "--epochs", "3"]
    assert main([*args, "--param", "optimizer=sgd", "--param", "device=cpu"]) == 0
    names = run_cells(
        ["Open the hand-over of distributed/; what each process gets: the job", cell],
        lab=tmp_lab, launchers=launchers, launch=Launch("torch", "TorchDistributor"),
        num_processes=1, epochs=3, lr=0.001, batch_size=20, local_mode=True,
    )  # fmt: skip
    assert names["job"]["optimizer"] == "sgd"  # read from what 04 committed
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for name, value in {**env, "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        result = names[rank_function](names["job"])
    finally:
        if rank_function == "train_hvd":
            import horovod.torch as hvd

            hvd.shutdown()
    model = load_model(tmp_lab.model_config, tmp_lab.initial_weights)
    model.load_state_dict(result["weights"])
    trained = load_model(tmp_lab.model_config, tmp_lab.weights)
    assert all(
        torch.allclose(a, b, rtol=1e-5, atol=1e-7)
        for a, b in zip(model.parameters(), trained.parameters(), strict=True)
    )
    history = read_json(tmp_lab.history)["history"]
    assert result["train_loss"] == pytest.approx(history[-1]["train_loss"], rel=1e-5)
    assert result["shard_rows"] == 960  # one rank: every training row
    # Rank 0 prints each epoch's loss, as HorovodRunner(driver_log_verbosity="all") shows it.
    printed = re.findall(
        r"^Epoch: (\d+) rank 0's training set: Average loss: (\S+)$",
        capsys.readouterr().out,
        flags=re.MULTILINE,
    )
    assert [int(epoch) for epoch, _ in printed] == [1, 2, 3]
    assert [float(loss) for _, loss in printed] == pytest.approx(
        [e["train_loss"] for e in history], abs=2e-6
    )  # printed with 6 decimals


def test_a_run_past_its_timeout_cancels_only_its_own_spark_jobs(tmp_path):
    # On Databricks the notebook command's own group is set on the thread before the stage runs.
    sc = RecordingSparkContext({"spark.jobGroup.id": "notebook-command"})
    started = {}
    start = time.perf_counter()
    with pytest.raises(PenguinRunError, match=r"^distributed run did not finish within 0 s; st"):
        with distributed_run(SimpleNamespace(sparkContext=sc), tmp_path, "X", 0.2):
            started.update(sc.properties)  # a Spark job takes the properties of its thread
            if sc.job_cancelled.wait(10):
                raise RuntimeError("job cancelled")
    assert time.perf_counter() - start < 5
    assert started["spark.jobGroup.id"].startswith("penguins-distribute-")
    assert started["spark.job.interruptOnCancel"] == "true"
    # Its group only, not cancelAllJobs: other notebooks share the cluster.
    assert sc.cancelled == [started["spark.jobGroup.id"]]
    assert sc.properties == {"spark.jobGroup.id": "notebook-command"}
    assert list(tmp_path.iterdir()) == []


def test_a_finished_run_knows_its_wall_time(tmp_path):
    spark = SimpleNamespace(sparkContext=RecordingSparkContext({}))
    with distributed_run(spark, tmp_path, "X", 60) as run:
        assert isinstance(run, DistributedRun) and run.folder.is_dir()
        time.sleep(0.05)
    assert run.wall_s >= 0.05
    assert not run.folder.exists()


def test_a_failed_rank_is_one_line_with_its_own_error(tmp_path, monkeypatch):
    def broken(job):
        raise ValueError(f"bad shard of {job['rows']} rows")

    spark = SimpleNamespace(sparkContext=RecordingSparkContext({}))
    with pytest.raises(PenguinRunError) as raised:
        with distributed_run(spark, tmp_path, "TorchDistributor", 60) as run:
            monkeypatch.setenv("RANK", "1")  # as TorchDistributor sets it in rank 1
            try:
                run.reporting(broken)({"rows": 480})
            except ValueError:
                raise RuntimeError("TorchDistributor failed, see the logs") from None
    assert str(raised.value) == "TorchDistributor failed: rank 1: ValueError: bad shard of 480 rows"
    assert list(tmp_path.iterdir()) == []


def test_rank_error_names_the_cause_not_the_other_ranks_shutdown(tmp_path):
    (tmp_path / "rank-0.error").write_text(
        "rank 0: horovod.common.exceptions.HorovodInternalError: Horovod has been shut down.\n"
    )
    (tmp_path / "rank-1.error").write_text("rank 1: ValueError: bad shard\n")
    assert rank_error(tmp_path, RuntimeError("see logs")) == "rank 1: ValueError: bad shard"


def test_rank_error_falls_back_to_the_launchers_last_error_line(tmp_path):
    output = "Traceback (most recent call last):\n  File x\nKeyError: 'Species'\nexit 1"
    assert rank_error(tmp_path, RuntimeError(output)) == "KeyError: 'Species'"
    assert rank_error(tmp_path, OSError("disk full\nmore")) == "OSError: disk full"


def test_ranks_on_the_driver_get_the_package_on_their_path(monkeypatch):
    # A notebook run by hand imports the package from its own folder; its ranks inherit this.
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    import penguin_classifier

    parent = os.path.dirname(os.path.dirname(penguin_classifier.__file__))
    with importable_by_driver_ranks():
        assert os.environ["PYTHONPATH"].split(os.pathsep) == [parent, "/elsewhere"]
    assert os.environ["PYTHONPATH"] == "/elsewhere"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["backend=mpi"], "parameter backend: 'mpi' is not one of ['auto', 'horovod', 'torch']"),
        (["num_processes=0"], "parameter num_processes: 0 is below 1"),
        (["lr=inf"], "parameter lr: inf is not a finite number above 0.0"),
        (["timeout_minutes=0"], "parameter timeout_minutes: 0 is not a finite number above 0.0"),
        # Processes on the driver (TorchDistributor's local mode): one core each.
        (
            ["backend=torch", f"num_processes={CORES + 1}"],
            f"parameter num_processes: {CORES + 1} processes need {CORES + 1} cores, "
            f"the driver has {CORES}",
        ),
        # On the workers (barrier tasks): one Spark task slot each; the session is local[2].
        (
            ["backend=torch", "local_mode=false", "num_processes=3"],
            "parameter num_processes: 3 processes need 3 Spark task slots, this cluster has 2",
        ),
    ],
)
def test_bad_parameters_are_refused_before_distributed_is_touched(tmp_lab, capsys, params, message):
    record = tmp_lab.folder("distributed") / "_manifest.json"
    before = record.read_bytes()
    args = ["run", "--only", "distribute", "--lab-dir", str(tmp_lab.root)]
    args += [a for p in params for a in ("--param", p)]
    assert penguins(capsys, *args) == (2, f"penguins run: distribute: {message}\n")
    assert record.read_bytes() == before  # the earlier commit stands
    tmp_lab.require("distributed")


def test_the_stage_needs_the_evaluation_first(tmp_lab, capsys):
    tmp_lab.evaluation.unlink()
    args = ["run", "--only", "distribute", "--lab-dir", str(tmp_lab.root)]
    rerun = f"{program('penguins')} run --lab-dir {tmp_lab.root} --only evaluate,distribute"
    message = f"{tmp_lab.evaluation} is missing: run: {rerun}"
    assert penguins(capsys, *args) == (2, f"penguins run: distribute: {message}\n")


@pytest.mark.parametrize(
    ("history", "found"),
    [
        ({"history": []}, "None"),  # written by a 04_train from before the optimizer widget
        ({"optimizer": None}, "None"),
        ({"optimizer": "rmsprop"}, "'rmsprop'"),
        ({"optimizer": ["adam"]}, "['adam']"),
        (["adam"], "None"),  # not a record of 04's
    ],
)
def test_a_history_without_a_known_optimizer_names_the_chain_to_run_again(tmp_path, history, found):
    path = tmp_path / "history.json"
    path.write_text(json.dumps(history))
    # 04 commits trained/, and 05 and 06 record that commit: all three run again.
    message = (
        f"{path}: optimizer {found} is not one of ['adam', 'sgd']: "
        "run 04_train, 05_evaluate, 06_distribute again"
    )
    with pytest.raises(PenguinInputError, match=f"^{re.escape(message)}$"):
        recorded_optimizer(path)


def test_penguins_run_gives_the_command_for_a_history_without_its_optimizer(tmp_lab, capsys):
    # trained/ as a 04_train from before the optimizer widget committed it, and 05 built on that
    # commit: every record matches its files; only history.json lacks what 06 reads.
    history = read_json(tmp_lab.history)
    del history["optimizer"]
    rewrite(tmp_lab.history, history)
    trained = tmp_lab.folder("trained") / MANIFEST
    rewrite(trained, {**read_json(trained), "files": describe(trained.parent)})
    evaluation = tmp_lab.folder("evaluation") / MANIFEST
    record = read_json(evaluation)
    rewrite(evaluation, {**record, "inputs": {**record["inputs"], "trained": sha256(trained)}})
    args = ["run", "--only", "distribute", "--lab-dir", str(tmp_lab.root)]
    rerun = f"{program('penguins')} run --lab-dir {tmp_lab.root} --only train,evaluate,distribute"
    message = f"{tmp_lab.history}: optimizer None is not one of ['adam', 'sgd']: run: {rerun}"
    assert penguins(capsys, *args) == (2, f"penguins run: distribute: {message}\n")


# --- the ranks on a worker node: the installed wheel, not the repo ------------------------------

RANKS = """
import json, sys
from penguin_classifier import launchers
from penguin_classifier.distributed_run import distributed_run

def where():  # the rank function: it imports the package in its body, as 06's do
    import os
    import penguin_classifier
    return {"file": penguin_classifier.__file__, "cwd": os.getcwd(),
            "pythonpath": os.environ.get("PYTHONPATH", "")}

def main(launcher, folder):
    spark = None
    if launcher == "TorchDistributor":
        from penguin_classifier.runtime import local_spark
        spark = local_spark("worker-node")
    with distributed_run(spark, folder, launcher, 120):
        if launcher == "horovod.run":
            return launchers.HorovodRunner(np=-2).run(where)
        # Barrier tasks, as on the scale target's workers.
        distributor = launchers.TorchDistributor(num_processes=2, local_mode=False, use_gpu=False)
        return distributor.run(where)

if __name__ == "__main__":  # horovod.run starts its processes with multiprocessing's spawn
    print(json.dumps(main(*sys.argv[1:])))
"""


@pytest.fixture(scope="module")
def worker_node():
    """A Python environment as a worker node's, on plain local disk: the wheel the bundle builds
    installed (no dependencies: the runtime's libraries are this environment's, named by a
    ``.pth`` file, which puts them after the wheel and leaves the editable install's own
    ``.pth`` unread); the node's interpreter and its site-packages."""
    with tempfile.TemporaryDirectory(prefix="penguins-worker-node-") as folder:
        wheel = library_wheel(Path(folder))
        venv.create(Path(folder, "node"), with_pip=False)
        python = Path(folder, "node", "bin", "python")
        install = ["--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)]
        subprocess.run([sys.executable, "-m", "pip", *install], check=True, timeout=120)
        site = Path(
            subprocess.run(
                [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True, capture_output=True, text=True, timeout=60,
            ).stdout.strip()
        )  # fmt: skip
        (site / "runtime.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        yield python, site


@pytest.mark.parametrize(
    "launcher", [pytest.param("horovod.run", marks=needs_horovod), "TorchDistributor"]
)
def test_ranks_in_a_clean_environment_import_the_installed_wheel(worker_node, local_disk, launcher):
    # Launched as 06 launches (HorovodRunner(np=-2) runs horovod.run here; TorchDistributor
    # with barrier tasks), from another folder, with no PYTHONPATH: what a worker node has.
    python, site = worker_node
    script = local_disk / "ranks.py"
    script.write_text(RANKS)
    (local_disk / "lab").mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(local_disk)}
    env.update({k: v for k, v in os.environ.items() if k == "JAVA_HOME"})
    result = subprocess.run(
        [python, script, launcher, str(local_disk / "lab")],
        cwd=local_disk, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rank = json.loads(result.stdout.strip().splitlines()[-1])
    # Rank 0 imported the wheel's copy, in the node's site-packages: the rank's path held the
    # node's site-packages (horovod.run: distributed_run's PYTHONPATH, the driver's copy) or
    # Spark's own zips (a barrier task's), never the repo's notebooks/, nor was it the rank's cwd.
    assert rank["file"] == str(site / "penguin_classifier" / "__init__.py")
    assert str(project_root() / "notebooks") not in rank["pythonpath"].split(os.pathsep)
    assert rank["cwd"] == str(local_disk)


# --- real runs: 2 processes on the local SparkSession ---------------------------------------------


@pytest.mark.parametrize(
    ("backend", "local_mode", "launcher"),
    [
        # The session's job run (backend auto, Horovod installed); a process in each Spark task.
        pytest.param("auto", "true", "horovod.run", marks=needs_horovod),
        pytest.param("horovod", "false", "horovod.spark.run", marks=needs_horovod),
        ("torch", "true", "TorchDistributor"),
        ("torch", "false", "TorchDistributor"),  # barrier tasks, as on worker nodes
    ],
    ids=["horovod.run", "horovod.spark.run", "TorchDistributor-local", "TorchDistributor-barrier"],
)
def test_two_processes_reach_single_process_accuracy_and_commit(
    lab, tmp_lab, spark, capfd, backend, local_mode, launcher
):
    if backend == "auto":
        trained = lab  # conftest's job run: notebook 06 at its defaults, EPOCHS epochs
    else:
        distribute(tmp_lab, spark, backend=backend, local_mode=local_mode)
        trained = tmp_lab
    if launcher == "horovod.spark.run":  # rank 0's progress, each epoch, reaches the driver
        assert f"Epoch: {EPOCHS} rank 0's training set: Average loss: " in capfd.readouterr().out
    summary = read_json(trained.distributed_metrics)
    assert (summary["launcher"], summary["num_processes"], summary["epochs"]) == (
        launcher, 2, EPOCHS,
    )  # fmt: skip
    assert summary["optimizer"] == read_json(trained.history)["optimizer"] == "adam"
    assert summary["shard_rows"] == 480  # 960 training rows, 2 ranks
    # Within one test row (1 in 102 is 0.98 points) of 04_train's single-process model.
    assert abs(summary["accuracy"] - summary["single_accuracy"]) <= 0.01
    trained.require("distributed")  # committed: every file is there and whole
    assert not list(trained.folder("distributed").glob("_run-*"))


def test_04_and_06_log_their_optimizer_to_mlflow(lab):
    train_run = tracking.reopen(lab, "trained")["train_run_id"]  # MLflow: the lab's store
    distribute_run = read_json(lab.folder("distributed") / tracking.MLFLOW_JSON)[
        "distribute_run_id"
    ]
    for run_id in (train_run, distribute_run):
        assert mlflow.get_run(run_id).data.params["optimizer"] == "adam"  # 04's default


@needs_horovod
def test_horovod_run_starts_no_spark(tmp_lab, capfd):
    # penguins run --only distribute with horovod.run: no JVM to wait for (seconds on 2 cores).
    def no_spark():
        raise AssertionError("a SparkSession was started")

    result = distribute(tmp_lab, LazySpark(no_spark), backend="horovod")
    assert read_json(tmp_lab.distributed_metrics)["launcher"] == "horovod.run"
    assert result.task_values  # the stage ran to its end
    # Rank 0's progress, each epoch, as HorovodRunner(driver_log_verbosity="all") shows it.
    out = capfd.readouterr().out
    for epoch in range(1, EPOCHS + 1):
        assert f"[0]<stdout>:Epoch: {epoch} rank 0's training set: Average loss: " in out
    assert "[1]<stdout>:Epoch" not in out


def test_a_loss_that_turns_nan_stops_the_stage_before_it_commits(tmp_lab, capsys):
    # A rate so large that the ranks' weights blow up: they finish, their mean loss is NaN.
    args = ["run", "--only", "distribute", "--lab-dir", str(tmp_lab.root), "--epochs", "3"]
    args += ["--param", "backend=torch", "--param", "lr=1e30"]
    message = (
        "epoch 3: the loss is nan, the weights are no longer finite numbers: "
        "try a smaller learning rate (lr)"
    )
    assert penguins(capsys, *args) == (2, f"penguins run: distribute: {message}\n")
    with pytest.raises(PenguinInputError, match="run 06_distribute first"):
        tmp_lab.require("distributed")


def failing_notebook(folder: Path, log: Path) -> Path:
    """A copy of notebook 06 whose per-rank functions fail on rank 1 before their shard: rank 1
    appends to ``log`` in the lab folder, which a volume refuses (the test's volume rules hold
    in every rank), as a broken worker would fail."""
    rank_1_fails = f"    if sampler.rank == 1:\n        open({str(log)!r}, 'a')\n"
    text, count = re.subn(
        r"^    x, y = ",
        lambda match: rank_1_fails + match.group(0),
        NOTEBOOK.read_text(),
        flags=re.MULTILINE,
    )
    assert count == 2  # train_hvd and train_ddp
    copy = folder / "06_distribute_rank_1_fails.py"
    copy.write_text(text)
    return copy


# horovod.spark.run's own thread ends with the failed Spark job: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize(
    ("backend", "local_mode", "launcher"),
    [
        ("torch", "true", "TorchDistributor"),
        pytest.param("horovod", "true", "horovod.run", marks=needs_horovod),
        pytest.param("horovod", "false", "horovod.spark.run", marks=needs_horovod),
    ],
)
def test_a_failing_rank_fails_the_run_in_one_line_and_leaves_no_model(
    tmp_lab, tmp_path, spark, backend, local_mode, launcher
):
    log = tmp_lab.root.resolve() / "rank-1.log"
    notebook = failing_notebook(tmp_path, log)
    widgets = {"lab_dir": str(tmp_lab.root), "backend": backend, "local_mode": local_mode}
    widgets["epochs"] = str(EPOCHS)
    start = time.perf_counter()
    with pytest.raises(PenguinRunError) as raised:
        run_notebook(notebook, widgets, spark)
    assert str(raised.value) == (
        f"{launcher} failed: rank 1: OSError: [Errno {errno.EOPNOTSUPP}] volumes do not support "
        f"appends or updates in place: '{log}'"
    )
    assert time.perf_counter() - start < 60  # fails fast: no waiting for the whole timeout
    assert not tmp_lab.distributed_weights.exists()
    assert not list(tmp_lab.folder("distributed").glob("_run-*"))
    with pytest.raises(PenguinInputError, match="run 06_distribute first"):
        tmp_lab.require("distributed")

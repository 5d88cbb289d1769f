"""Stage 6, distribute: the lab's training again, on several processes, with Horovod or DDP.

Backends and where each runs:

* ``horovod`` on Databricks Runtime ML (≤ 15.4 LTS): ``sparkdl.HorovodRunner(np=-N)``, N
  processes on the driver, which is what a single-node cluster has (``local_mode=False``:
  ``np=N``, processes on the worker nodes);
* ``horovod`` elsewhere: ``horovod.spark.run(fn, num_proc=N)`` on the active SparkSession;
* ``torch``: ``TorchDistributor(num_processes=N, local_mode=..., use_gpu=<cuda available>)``,
  DDP over gloo on CPUs (nccl on GPUs); ``local_mode=False`` runs barrier tasks across workers;
* ``auto``: Horovod where it is installed, else TorchDistributor.

Ranks hand their trained weights (the same on every rank) back with their result, since they
may run on other nodes and nothing may be renamed into a volume; ``distributed/`` is committed
only when every rank finished, so a failed run leaves no model that a later step would use.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import sys
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinInputError, PenguinRunError
from .evaluate import evaluate_weights
from .layout import Handover, Lab, read_json, write_json
from .rank_training import ddp_training, train_rank_horovod, train_rank_torch
from .runtime import on_databricks
from .train import check_loss

BACKENDS = ["auto", "horovod", "torch"]


@dataclass(frozen=True)
class Launch:
    backend: str  # horovod | torch
    launcher: str  # HorovodRunner | horovod.spark.run | TorchDistributor


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose_launch(
    backend: str, *, databricks: bool, has_horovod: bool, has_sparkdl: bool
) -> Launch:
    """Which launcher runs ``backend`` here; a clear error when it cannot run."""
    if backend not in BACKENDS:
        raise PenguinInputError(f"parameter backend: {backend!r} is not one of {BACKENDS}")
    if backend == "auto":
        backend = "horovod" if has_horovod else "torch"
    if backend == "torch":
        return Launch("torch", "TorchDistributor")
    if not has_horovod:
        raise PenguinInputError(
            "backend horovod: horovod is not installed (Databricks Runtime ML up to 15.4 LTS "
            "ships it; locally run scripts/install_horovod.sh); or use backend=torch"
        )
    if databricks and has_sparkdl:
        return Launch("horovod", "HorovodRunner")
    return Launch("horovod", "horovod.spark.run")


def check_num_processes(
    num_processes: int, slots: int | None, cores: int | None, launch: Launch, local_mode: bool
):
    """A process per Spark task slot (Spark launchers, or processes on the workers), else per
    core of the driver: fail now rather than wait for a timeout. ``None``: not known."""
    if num_processes < 1:
        raise PenguinInputError(f"parameter num_processes: {num_processes} is below 1")
    if launch.launcher == "horovod.spark.run" or not local_mode:
        limit, unit, where = slots, "Spark task slots", "this cluster has"
    else:
        limit, unit, where = cores, "cores", "the driver has"
    if limit is not None and num_processes > limit:
        raise PenguinInputError(
            f"parameter num_processes: {num_processes} processes need {num_processes} {unit}, "
            f"{where} {limit}"
        )


@contextmanager
def importable_by_workers():
    """Let fresh worker interpreters import ``penguin_classifier`` wherever it lives.

    ``PYTHONPATH`` (honoured by TorchDistributor's torchrun and Horovod's processes) gets the
    folder holding the package, a workspace folder on Databricks; cloudpickle also ships the
    package's functions by value, for launchers that unpickle before any path is set.
    """
    package_parent = str(Path(__file__).resolve().parents[1])
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, before) if p)
    for name in ("cloudpickle", "pyspark.cloudpickle"):
        if installed(name):
            module = importlib.import_module(name)
            module.register_pickle_by_value(sys.modules[__package__])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def launch_ranks(launch: Launch, fn, job: dict, num_processes: int, local_mode: bool):
    """Run ``fn(job)`` on ``num_processes`` processes; return one rank's result."""
    if launch.launcher == "HorovodRunner":
        from sparkdl import HorovodRunner

        # Negative np: processes on the driver, the only node of a single-node cluster;
        # positive: on the workers of a multi-node cluster.
        np = -num_processes if local_mode else num_processes
        return HorovodRunner(np=np, driver_log_verbosity="all").run(fn, job=job)
    if launch.launcher == "horovod.spark.run":
        import horovod.spark

        results = horovod.spark.run(
            fn,
            args=(job,),
            num_proc=num_processes,
            start_timeout=job["start_timeout_s"],
            use_gloo=True,
            # Horovod's rendezvous waits this long for a rank that never comes (default 30 s).
            env={**os.environ, "HOROVOD_GLOO_TIMEOUT_SECONDS": str(int(job["start_timeout_s"]))},
            verbose=0,
        )
        return results[0]
    from pyspark.ml.torch.distributor import TorchDistributor

    distributor = TorchDistributor(
        num_processes=num_processes, local_mode=local_mode, use_gpu=job["use_gpu"]
    )
    return distributor.run(fn, job)


def run_with_timeout(call, timeout_s: float, on_timeout):
    """``call()`` in this thread (launchers set signal handlers, which only the main thread
    may); a watchdog thread calls ``on_timeout()`` after ``timeout_s``, which makes it fail."""
    done, fired = threading.Event(), threading.Event()

    def watchdog():
        if not done.wait(timeout_s):
            fired.set()
            on_timeout()

    threading.Thread(target=watchdog, name="penguins-watchdog", daemon=True).start()
    try:
        result = call()
    except BaseException:
        if fired.is_set():
            raise PenguinRunError(
                f"distributed run did not finish within {timeout_s:.0f} s; stopped"
            ) from None
        raise
    finally:
        done.set()
    if fired.is_set():
        raise PenguinRunError(f"distributed run did not finish within {timeout_s:.0f} s; stopped")
    return result


@contextmanager
def spark_job_group(sc):
    """Put the Spark jobs this thread starts into a group of their own, as Horovod's runner
    does, so that a timeout cancels only them; the thread's group before (on Databricks, the
    notebook command's) comes back afterwards.

    A job group is a property of the thread that starts a job: TorchDistributor starts its
    barrier job (``local_mode=False``) from the calling thread, so it is in this group;
    horovod.spark.run starts its job from a thread of its own, in its own group, and cancels
    that group itself when its processes fail.
    """
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    before = {key: sc.getLocalProperty(key) for key in keys}
    group = f"penguins-distribute-{uuid.uuid4().hex[:12]}"
    sc.setJobGroup(group, "penguins: distributed training", interruptOnCancel=True)
    try:
        yield group
    finally:
        for key, value in before.items():
            sc.setLocalProperty(key, value)  # None removes it


def stop_workers(sc, group: str) -> None:
    """Cancel the Spark jobs of a run (its group only: ``cancelAllJobs`` would also cancel other
    notebooks' jobs on a shared cluster) and end the worker processes it started."""
    try:
        sc.cancelJobGroup(group)
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
    try:
        import psutil
    except ImportError:
        return
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "torch.distributed.run" in cmdline or "torchrun" in cmdline or "horovod" in cmdline:
            child.kill()


RANK_VARIABLES = ("RANK", "HOROVOD_RANK", "OMPI_COMM_WORLD_RANK")


def reporting_errors(fn):
    """Wrap a per-rank function: an error's last line goes to the run folder before it is
    raised, since launchers report a failed rank only as "see the logs"."""

    def rank_main(job: dict):
        try:
            return fn(job)
        except Exception as error:
            rank = next((os.environ[v] for v in RANK_VARIABLES if v in os.environ), "?")
            line = traceback.format_exception_only(type(error), error)[-1].strip()
            Path(job["run_dir"], f"rank-{rank}.error").write_text(f"rank {rank}: {line}\n")
            raise

    return rank_main


ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit))(: .*)?$")


def rank_error(run_dir: Path, error: BaseException) -> str:
    """One line for a failed run: the ranks' own error lines, else the launcher's last one."""
    lines = [p.read_text().strip() for p in sorted(run_dir.glob("rank-*.error"))]
    if lines:
        return "; ".join(lines)
    found = [
        m.group(0) for line in str(error).splitlines() if (m := ERROR_LINE.match(line.strip()))
    ]
    if found:
        return found[-1]
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0] if first else ''}".strip()


def launch_here(backend: str) -> Launch:
    """The launcher for ``backend`` on this cluster (or machine)."""
    return choose_launch(
        backend,
        databricks=on_databricks(),
        has_horovod=installed("horovod.torch"),
        has_sparkdl=installed("sparkdl"),
    )


def rank_function(launch: Launch):
    """The per-rank training function the launcher ships to each process."""
    return train_rank_horovod if launch.backend == "horovod" else train_rank_torch


def rank_source(launch: Launch) -> str:
    """The source of the per-rank training, to show: its distributed lines are marked."""
    functions = (
        [train_rank_horovod] if launch.backend == "horovod" else [train_rank_torch, ddp_training]
    )
    return "\n\n".join(inspect.getsource(f) for f in functions)


def launch_training(
    spark,
    lab: Lab,
    launch: Launch,
    rank_fn,
    num_processes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    local_mode: bool,
    timeout_s: float = 600,
    start_timeout_s: float = 120,
) -> dict:
    """Run ``rank_fn`` on ``num_processes`` processes; one rank's result, with ``wall_s``."""
    import torch

    sc = spark.sparkContext  # starts a lazy local session: the Spark launchers need one
    check_num_processes(num_processes, sc.defaultParallelism, os.cpu_count(), launch, local_mode)
    # Ranks (on any node) write their error lines here: the lab folder is shared storage.
    run_dir = lab.folder("distributed") / f"_run-{uuid.uuid4().hex[:12]}"
    run_dir.mkdir(parents=True)
    job = {
        "lab_dir": str(lab.root.resolve()),
        "run_dir": str(run_dir.resolve()),
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "use_gpu": torch.cuda.is_available(),
        "start_timeout_s": start_timeout_s,
    }
    fn = reporting_errors(rank_fn)
    start = time.perf_counter()
    try:
        with importable_by_workers(), spark_job_group(sc) as group:
            result = run_with_timeout(
                lambda: launch_ranks(launch, fn, job, num_processes, local_mode),
                timeout_s,
                lambda: stop_workers(sc, group),
            )
    except PenguinRunError:
        raise
    except Exception as error:  # noqa: BLE001 - reported as one line
        raise PenguinRunError(f"{launch.launcher} failed: {rank_error(run_dir, error)}") from None
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    check_loss(epochs, result["train_loss"])  # the ranks' mean; NaN once any rank's weights are
    return {**result, "wall_s": time.perf_counter() - start}


def begin_handover(
    lab: Lab,
    launch: Launch,
    num_processes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    local_mode: bool,
) -> Handover:
    """Check the inputs, then start the hand-over of ``distributed/`` (uncommitting it)."""
    inputs = lab.require("prepared", "model", "trained", "evaluation")
    parameters = {
        "backend": launch.backend,
        "num_processes": num_processes,
        "epochs": epochs,
        "lr_per_process": lr,
        "batch_size": batch_size,
        "local_mode": local_mode,
    }
    return Handover(lab.folder("distributed"), "06_distribute", parameters, inputs)


def write_distributed(handover: Handover, lab: Lab, launch: Launch, result: dict) -> dict:
    """Write the weights and ``distributed.json`` (with the single-process figures) to commit."""
    weights = handover.local / lab.distributed_weights.name
    weights.write_bytes(result["weights"])
    metrics = evaluate_weights(lab, weights)
    summary = {
        **handover.parameters,
        "launcher": launch.launcher,
        "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "single_accuracy": read_json(lab.evaluation)["accuracy"],
        "wall_s": round(result["wall_s"], 3),
        "train_s": round(result["train_s"], 3),
        "startup_s": round(result["wall_s"] - result["train_s"], 3),
        "train_loss": result["train_loss"],
        "shard_rows": result["shard_rows"],
    }
    write_json(handover.local / lab.distributed_metrics.name, summary)
    return summary


def comparison_table(summary: dict):
    """Distributed against single-process training, to display."""
    import pandas as pd

    processes = f"{summary['num_processes']} processes ({summary['backend']})"
    return pd.DataFrame(
        {
            "training": [processes, "1 process (04_train)"],
            "test accuracy": [summary["accuracy"], summary["single_accuracy"]],
        }
    )


def distribute_stage(
    lab: Lab,
    spark,
    backend: str = "auto",
    num_processes: int = 2,
    epochs: int = 100,
    lr: float = 0.001,
    batch_size: int = 20,
    local_mode: bool = True,
    timeout_s: float = 600,
    start_timeout_s: float = 120,
    rank_fn=None,
    log=print,
) -> dict:
    """The whole stage as notebook 06 runs it, without MLflow."""
    launch = launch_here(backend)
    handover = begin_handover(lab, launch, num_processes, epochs, lr, batch_size, local_mode)
    log(f"{launch.launcher}: {num_processes} processes, backend {launch.backend}")
    result = launch_training(
        spark, lab, launch, rank_fn or rank_function(launch), num_processes, epochs, lr,
        batch_size, local_mode, timeout_s, start_timeout_s,
    )  # fmt: skip
    summary = write_distributed(handover, lab, launch, result)
    handover.commit()
    log(comparison_table(summary).to_string(index=False))
    return summary

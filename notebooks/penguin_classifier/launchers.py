"""The lab's launchers for notebook 06, wherever it runs, and which one runs a backend here.

Notebook 06 starts its ranks with the lab's lines, ``HorovodRunner(np=-N).run(train_hvd, ...)``
or ``TorchDistributor(num_processes=N, ...).run(train_ddp, ...)``, with these classes: as
``LocalDbutils`` stands in for ``dbutils``, they are Databricks' launchers on Databricks and
stand-ins with the same interface elsewhere.

* :class:`HorovodRunner`: ``sparkdl.HorovodRunner`` on Databricks Runtime ML (≤ 15.4 LTS):
  ``np=-N``: N processes on the driver, which is what a single-node cluster has; ``np=N``: on
  the worker nodes. Elsewhere ``np=-N`` runs N processes on this machine with ``horovod.run``
  and ``np=N`` a process in each of N tasks of the active SparkSession with
  ``horovod.spark.run``; every rank's output reaches the driver (``driver_log_verbosity='all'``).
* :class:`TorchDistributor`: pyspark's, DDP over gloo on CPUs (nccl on GPUs); ``local_mode=
  False`` runs barrier tasks across the workers.

Both hand the function to the ``with distributed_run(...)`` block they run in, which turns a
failed rank into one line and stops the run at its timeout. ``backend=auto`` is Horovod where it
is installed, else TorchDistributor (:func:`choose_launch`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass

from .distributed_run import reporting
from .errors import PenguinInputError
from .runtime import on_databricks

BACKENDS = ["auto", "horovod", "torch"]
START_TIMEOUT_S = 120  # how long a rank waits for the others to start


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class HorovodRunner:
    """``sparkdl.HorovodRunner`` on Databricks; elsewhere ``horovod.run`` (``np=-N``) or
    ``horovod.spark.run`` (``np=N``). ``run(main, **kwargs)``: rank 0's return value."""

    def __init__(self, *, np: int, driver_log_verbosity: str = "log_callback_only"):
        self.np, self.driver_log_verbosity = np, driver_log_verbosity

    def run(self, main, **kwargs):
        main = reporting(main)
        if on_databricks() and installed("sparkdl"):
            from sparkdl import HorovodRunner

            runner = HorovodRunner(np=self.np, driver_log_verbosity=self.driver_log_verbosity)
            return runner.run(main, **kwargs)
        if self.np < 0:  # processes on this machine, as sparkdl runs them on the driver
            import horovod

            hosts = f"localhost:{-self.np}"
            return horovod.run(  # one result per rank: rank 0's first
                main, kwargs=kwargs, np=-self.np, hosts=hosts, start_timeout=START_TIMEOUT_S,
                use_gloo=True, verbose=0,
            )[0]  # fmt: skip
        import horovod.spark

        # Horovod's rendezvous waits this long for a rank that never comes (default 30 s).
        env = {**os.environ, "HOROVOD_GLOO_TIMEOUT_SECONDS": str(START_TIMEOUT_S)}
        return horovod.spark.run(
            main, kwargs=kwargs, num_proc=self.np, start_timeout=START_TIMEOUT_S, use_gloo=True,
            env=env, stdout=sys.stdout, stderr=sys.stderr, verbose=0,  # the ranks' output here
        )[0]  # fmt: skip


class TorchDistributor:
    """pyspark's ``TorchDistributor`` (same arguments), here and on Databricks."""

    def __init__(self, **kwargs):
        from pyspark.ml.torch.distributor import TorchDistributor

        self.distributor = TorchDistributor(**kwargs)

    def run(self, train_object, *args, **kwargs):
        return self.distributor.run(reporting(train_object), *args, **kwargs)


@dataclass(frozen=True)
class Launch:
    backend: str  # horovod | torch
    launcher: str  # HorovodRunner | horovod.run | horovod.spark.run | TorchDistributor

    @property
    def uses_spark(self) -> bool:
        """Whether it starts the processes through the SparkSession: all but horovod.run."""
        return self.launcher != "horovod.run"


def choose_launch(
    backend: str, *, databricks: bool, has_horovod: bool, has_sparkdl: bool, local_mode: bool = True
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
    # Processes on this machine need no Spark tasks: for a function doing nothing, horovod.run
    # took 2.3-4.3 s and horovod.spark.run 12.8-17.3 s (task registration, launch, shutdown).
    return Launch("horovod", "horovod.run" if local_mode else "horovod.spark.run")


def launch_here(backend: str, local_mode: bool = True) -> Launch:
    """The launcher for ``backend`` on this cluster (or machine)."""
    return choose_launch(
        backend,
        databricks=on_databricks(),
        has_horovod=installed("horovod.torch"),
        has_sparkdl=installed("sparkdl"),
        local_mode=local_mode,
    )


def check_classic_compute(spark) -> None:
    """Refuse standard (shared) access mode and serverless compute: their notebooks get a Spark
    Connect session, which has no ``sparkContext`` for the launchers, and no ML runtime.
    Serverless says so in ``DATABRICKS_RUNTIME_VERSION`` (``client.<n>``)."""
    serverless = "client" in os.environ.get("DATABRICKS_RUNTIME_VERSION", "")
    if serverless or type(spark).__module__.startswith("pyspark.sql.connect"):
        raise PenguinInputError(
            "06_distribute needs a classic cluster in dedicated (single user) access mode with "
            "Databricks Runtime ML: this is serverless or standard access mode compute, whose "
            "Spark Connect session has no sparkContext for HorovodRunner or TorchDistributor"
        )


def check_num_processes(
    num_processes: int, slots: int | None, cores: int | None, launch: Launch, local_mode: bool
) -> None:
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

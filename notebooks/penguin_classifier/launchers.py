"""Which launcher runs a distributed backend here, and how many processes it can run.

* ``horovod`` on Databricks Runtime ML (≤ 15.4 LTS): ``sparkdl.HorovodRunner(np=-N)``, N
  processes on the driver, which is what a single-node cluster has (``local_mode=False``:
  ``np=N``, processes on the worker nodes);
* ``horovod`` elsewhere: ``horovod.run(fn, np=N, hosts="localhost:N")``, N processes on this
  machine as ``np=-N`` runs them on the driver (``local_mode=False``:
  ``horovod.spark.run(fn, num_proc=N)``, a process in each of N tasks of the active SparkSession);
* ``torch``: ``TorchDistributor(num_processes=N, local_mode=..., use_gpu=<cuda available>)``,
  DDP over gloo on CPUs (nccl on GPUs); ``local_mode=False`` runs barrier tasks across workers;
* ``auto``: Horovod where it is installed, else TorchDistributor.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .errors import PenguinInputError
from .runtime import on_databricks

BACKENDS = ["auto", "horovod", "torch"]


@dataclass(frozen=True)
class Launch:
    backend: str  # horovod | torch
    launcher: str  # HorovodRunner | horovod.run | horovod.spark.run | TorchDistributor

    @property
    def uses_spark(self) -> bool:
        """Whether it starts the processes through the SparkSession: all but horovod.run."""
        return self.launcher != "horovod.run"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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

"""What wraps the launch in notebook 06: ranks on the driver that can import the lab's code (on
worker nodes, the job's wheel), a timeout that stops only this run's Spark jobs and processes,
and a failed rank reported in one line.

    with distributed_run(spark, handover.folder, "TorchDistributor", timeout_s) as run:
        result = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(
            train_ddp, job
        )

Launchers report a failed rank as "see the logs"; so each rank writes its error's last line to
the run's folder, which is in the lab folder (shared storage: ranks may run on other nodes), and
the driver raises them as one :class:`PenguinRunError` line. The launchers of
:mod:`launchers` wrap the function they ship with :func:`reporting` for the run they are in.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinRunError

RANK_VARIABLES = ("RANK", "HOROVOD_RANK", "OMPI_COMM_WORLD_RANK")
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit))(: .*)?$")
# What the other ranks raise once one rank failed: Horovod shuts down their collectives; gloo
# loses the peer of their collective (torch 2.3 to 2.7, as on the 15.4 to 17.3 LTS ML runtimes).
CONSEQUENCES = ("HorovodInternalError", "Connection closed by peer")


@dataclass
class DistributedRun:
    """A run in progress: the folder its ranks write their errors to; its wall time once over."""

    folder: Path
    wall_s: float = 0.0

    def reporting(self, fn):
        """``fn`` for the ranks: its error's last line goes to the run's folder, then it is
        raised as before."""
        folder = str(self.folder.resolve())

        def rank_main(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                rank = next((os.environ[v] for v in RANK_VARIABLES if v in os.environ), "?")
                line = traceback.format_exception_only(type(error), error)[-1].strip()
                Path(folder, f"rank-{rank}.error").write_text(f"rank {rank}: {line}\n")
                raise

        return rank_main


# The run of the ``with distributed_run(...)`` block this process is in, if any.
_active: list[DistributedRun] = []


def reporting(fn):
    """``fn`` for the ranks of the run in progress (:meth:`DistributedRun.reporting`); ``fn``
    itself outside a ``with distributed_run(...)`` block."""
    return _active[-1].reporting(fn) if _active else fn


@contextmanager
def distributed_run(spark, folder: str | os.PathLike, launcher: str, timeout_s: float):
    """Run the launcher call in the ``with`` body; yield a :class:`DistributedRun`.

    The body runs in this thread (launchers set signal handlers, which only the main thread
    may); a watchdog thread stops the run's workers after ``timeout_s``, which makes the call
    fail. A failure or a timeout becomes one :class:`PenguinRunError` line; the run's folder
    (under ``folder``) is removed either way. ``spark``: None for a launcher without Spark.
    """
    sc = spark.sparkContext if spark is not None else None  # starts a lazy local session
    run = DistributedRun(Path(folder) / f"_run-{uuid.uuid4().hex[:12]}")
    run.folder.mkdir(parents=True)
    done, fired = threading.Event(), threading.Event()
    timed_out = f"distributed run did not finish within {timeout_s:.0f} s; stopped"
    start = time.perf_counter()
    try:
        with importable_by_driver_ranks(), spark_job_group(sc) as group:

            def watchdog():
                if not done.wait(timeout_s):
                    fired.set()
                    stop_workers(sc, group)

            threading.Thread(target=watchdog, name="penguins-watchdog", daemon=True).start()
            _active.append(run)
            try:
                yield run
            finally:
                _active.remove(run)
                done.set()
    except Exception as error:  # noqa: BLE001 - reported as one line
        if fired.is_set():
            raise PenguinRunError(timed_out) from None
        raise PenguinRunError(f"{launcher} failed: {rank_error(run.folder, error)}") from None
    finally:
        run.wall_s = time.perf_counter() - start
        shutil.rmtree(run.folder, ignore_errors=True)
    if fired.is_set():
        raise PenguinRunError(timed_out)


@contextmanager
def importable_by_driver_ranks():
    """Let the ranks started on the driver import ``penguin_classifier`` from where this
    process did: ``PYTHONPATH`` gets the folder holding the package.

    Ranks on the driver (``local_mode=true``: torchrun, mpirun) inherit its environment. A
    notebook run by hand imports the package from its own folder, which only the notebook's
    ``sys.path`` holds; without this its ranks fail with ``No module named
    'penguin_classifier'`` (the dev cluster cannot attach the wheel: a bundle's cluster has no
    ``libraries``). Ranks on worker nodes never see it: they start with the executor's own
    environment and import the wheel the job's cluster installs on every node (databricks.yml's
    artifact), as ``test_ranks_in_a_clean_environment_import_the_installed_wheel`` shows.
    """
    package_parent = str(Path(__file__).resolve().parents[1])
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


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
    if sc is None:  # no Spark, no jobs
        yield None
        return
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
        if sc is not None:
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


def rank_error(folder: Path, error: BaseException) -> str:
    """One line for a failed run: the ranks' own error lines (the cause, not the other ranks'
    consequence), else the launcher's last error line."""
    lines = [p.read_text().strip() for p in sorted(folder.glob("rank-*.error"))]
    causes = [line for line in lines if not any(c in line for c in CONSEQUENCES)]
    if causes or lines:
        return "; ".join(causes or lines)
    found = [
        m.group(0) for line in str(error).splitlines() if (m := ERROR_LINE.match(line.strip()))
    ]
    if found:
        return found[-1]
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0] if first else ''}".strip()

"""A local run takes its lab folder for itself: ``with taken(lab):`` or one line naming the run
that holds it.

The lock is ``<lab_dir>/_lock.json``, created exclusively (``O_CREAT | O_EXCL``, one plain
write: a volume's rules allow it) and deleted at the end. A lock whose process is gone (same
host, no process with that pid and start time) is taken over. On Databricks the bundle's
``max_concurrent_runs: 1`` serialises the job's runs instead.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager

import psutil
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.layout import LOCK, Lab


def this_process() -> dict:
    me = psutil.Process()
    return {"pid": me.pid, "started": me.create_time(), "host": socket.gethostname()}


def alive(holder: dict) -> bool:
    """Whether the process that wrote ``holder`` still runs (elsewhere: assume it does)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        return abs(psutil.Process(holder["pid"]).create_time() - holder["started"]) < 1
    except psutil.NoSuchProcess:
        return False


def read_holder(path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        return None
    return holder if isinstance(holder, dict) and {"pid", "started"} <= set(holder) else None


def take(lab: Lab) -> dict:
    """Create the lock; take over a dead run's; refuse a live one's in one line."""
    path = lab.root / LOCK
    me = {**this_process(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_holder(path)
            if holder is None:
                raise PenguinInputError(
                    f"lab folder {lab.root} is locked by {path}, which is unreadable: "
                    "delete it if no run is using this lab folder"
                ) from None
            if holder and alive(holder):
                raise PenguinInputError(
                    f"lab folder {lab.root} is in use by another run (pid {holder['pid']} on "
                    f"{holder.get('host')}, since {holder.get('since')}): wait for it to end "
                    "or choose another lab folder"
                ) from None
            path.unlink(missing_ok=True)  # the run that held it is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me) + "\n")
        return me
    raise PenguinInputError(f"lab folder {lab.root}: another run took {path} at the same time")


@contextmanager
def taken(lab: Lab):
    """Hold ``lab`` for the ``with`` block (the lab folder is checked and created first)."""
    lab.check().root.mkdir(parents=True, exist_ok=True)
    me = take(lab)
    try:
        yield
    finally:
        holder = read_holder(lab.root / LOCK)
        if holder and holder["pid"] == me["pid"] and holder["started"] == me["started"]:
            (lab.root / LOCK).unlink()

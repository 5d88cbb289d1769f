"""A local run takes its lab folder for itself: ``with taken(lab):`` or one line naming the run
that holds it.

The lock is ``<lab_dir>/_lock.json``, created exclusively (``O_CREAT | O_EXCL``, one plain
write: a volume's rules allow it) and deleted at the end. A lock whose process is gone (same
host, no process with that pid and start time, or only a zombie's) is taken over by one run
only: the run that creates ``_lock.takeover.json`` exclusively checks that the lock is still
the one it found, deletes it, creates its own and deletes the marker; any other is refused. A
lock written on another host cannot be checked from here: it stays until deleted by hand. On
Databricks the bundle's ``max_concurrent_runs: 1`` serialises the job's runs instead.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.lab import LOCK, TAKEOVER, Lab

# The fields of a lock this module writes, their types (bool is no int here) and their names.
FIELDS = {
    "pid": (int, "an integer"),
    "started": ((int, float), "a number"),
    "host": (str, "a string"),
    "since": (str, "a string"),
}
MAX_BYTES = 4096  # a lock is ~100 bytes: a longer file is not one


def this_process() -> dict:
    me = psutil.Process()
    return {"pid": me.pid, "started": me.create_time(), "host": socket.gethostname()}


def alive(holder: dict) -> bool:
    """Whether the process that wrote ``holder`` still runs (elsewhere: assume it does)."""
    if holder["host"] != socket.gethostname():
        return True
    try:
        process = psutil.Process(holder["pid"])
        same = abs(process.create_time() - holder["started"]) < 1
        return same and process.status() != psutil.STATUS_ZOMBIE  # a zombie has ended
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False


def problem(holder) -> str | None:
    """What makes ``holder`` (a lock file's JSON) other than a lock this module writes."""
    if not isinstance(holder, dict):
        return "not a JSON object"
    for name, (kind, called) in FIELDS.items():
        if name not in holder:
            return f"no {name}"
        value = holder[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"{name} {value!r} is not {called}"
    if holder["pid"] < 1 or not math.isfinite(holder["started"]):
        return f"pid {holder['pid']} or start time {holder['started']} is impossible"
    return None


def read_holder(path: Path) -> dict | None:
    """The run in the lock file ``path``; None when there is none. One line naming the file
    and how to clear it when it is not a lock this module writes."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES)  # a longer file, cut here, is not JSON
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        wrong = "unreadable"
    else:
        if (why := problem(holder)) is None:
            return holder
        wrong = f"not a lock of this project ({why})"
    raise PenguinInputError(
        f"lab folder {path.parent} is locked by {path}, which is {wrong}: "
        "delete it if no run is using this lab folder"
    )


def create(path: Path, content: dict) -> bool:
    """Create ``path`` holding ``content``, unless it exists: whether this call created it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(content) + "\n")
    return True


def in_use(lab: Lab, holder: dict) -> PenguinInputError:
    run = f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    if holder["host"] != socket.gethostname():
        return PenguinInputError(
            f"lab folder {lab.root} is in use by a run on another host ({run}), which this host "
            f"cannot check: once that run is over, delete {lab.root / LOCK}"
        )
    return PenguinInputError(
        f"lab folder {lab.root} is in use by another run ({run}): wait for it to end "
        "or choose another lab folder"
    )


def take_over(lab: Lab, gone: dict) -> None:
    """Delete the lock of ``gone``, a run that is over, if no other run is taking it over and
    the lock is still ``gone``'s (another run may have taken it over and released the marker
    since this one read it)."""
    marker = lab.root / TAKEOVER
    if not create(marker, this_process()):
        raise PenguinInputError(
            f"lab folder {lab.root}: another run is taking over the lock of a run that is gone "
            f"({marker} exists): try again; if that file stays, delete it"
        )
    try:
        if read_holder(lab.root / LOCK) == gone:
            (lab.root / LOCK).unlink()
    finally:
        marker.unlink()


def take(lab: Lab) -> dict:
    """Create the lock; take over a dead run's; refuse a live one's in one line."""
    path = lab.root / LOCK
    me = {**this_process(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for _ in range(2):
        if create(path, me):
            return me
        holder = read_holder(path)
        if holder is not None and alive(holder):
            raise in_use(lab, holder)
        if holder is not None:
            take_over(lab, holder)
    raise PenguinInputError(f"lab folder {lab.root}: another run took {path} at the same time")


@contextmanager
def taken(lab: Lab):
    """Hold ``lab`` for the ``with`` block (the lab folder is checked and created first)."""
    lab.check().root.mkdir(parents=True, exist_ok=True)
    me = take(lab)
    try:
        yield
    finally:
        try:
            mine = read_holder(lab.root / LOCK) == me
        except PenguinInputError:  # replaced by something else: not this run's to delete
            mine = False
        if mine:
            (lab.root / LOCK).unlink()

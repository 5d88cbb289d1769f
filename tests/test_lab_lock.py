"""One local run a lab folder: a second is refused in one line naming the first; a lock left
by a process that is gone is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import psutil
import pytest
from penguin_classifier.lab import LOCK, Lab
from test_cli import penguins_process  # the CLI in a process of its own

from penguins import lab_lock
from penguins.cli import main
from penguins.lab_lock import taken


def test_a_second_run_on_a_lab_folder_in_use_is_refused(tmp_path):
    lab = Lab(tmp_path / "lab")
    with taken(lab):  # this process holds it, as a first `penguins run` would
        holder = json.loads((lab.root / LOCK).read_text())
        second = penguins_process("run", "--only", "ingest", "--lab-dir", str(lab.root))
        assert second.returncode == 2
        assert second.stderr == (
            f"penguins run: lab folder {lab.root} is in use by another run (pid {holder['pid']} "
            f"on {socket.gethostname()}, since {holder['since']}): wait for it to end or choose "
            "another lab folder\n"
        )
        assert not lab.folder("raw").exists()  # nothing ran
    assert not (lab.root / LOCK).exists()  # released


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over(tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    lab = Lab(tmp_path / "lab")
    lab.root.mkdir()
    stale = {"pid": gone.pid, "started": started, "host": socket.gethostname(), "since": "then"}
    (lab.root / LOCK).write_text(json.dumps(stale))
    assert main(["run", "--only", "ingest", "--lab-dir", str(lab.root)]) == 0
    lab.require("raw")
    assert not (lab.root / LOCK).exists()


HOST = socket.gethostname()


def lock(pid=1, started=1.0, host=HOST, since="then") -> str:
    return json.dumps({"pid": pid, "started": started, "host": host, "since": since})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # On this host the holder's pid and start time went to psutil and arithmetic: a
        # TypeError or ValueError traceback; a list, or NaN, was unreadable or alive.
        (lock(pid="123"), "not a lock of this project (pid '123' is not an integer)"),
        (lock(pid=True), "not a lock of this project (pid True is not an integer)"),
        (lock(pid=-1), "not a lock of this project (pid -1 or start time 1.0 is impossible)"),
        (lock(started="x"), "not a lock of this project (started 'x' is not a number)"),
        (lock(host=5), "not a lock of this project (host 5 is not a string)"),
        (lock(since=None), "not a lock of this project (since None is not a string)"),
        (json.dumps({"pid": 1, "started": 1.0}), "not a lock of this project (no host)"),
        ("[1, 2]", "not a lock of this project (not a JSON object)"),
        ("[" * 100_000, "unreadable"),  # nested past the JSON parser's recursion
        ("", "unreadable"),
    ],
)
def test_a_lock_file_that_is_not_a_lock_is_one_line_naming_it(tmp_path, capsys, content, problem):
    lab = Lab(tmp_path / "lab")
    lab.root.mkdir()
    (lab.root / LOCK).write_text(content)
    assert main(["run", "--only", "ingest", "--lab-dir", str(lab.root)]) == 2
    assert capsys.readouterr().err == (
        f"penguins run: lab folder {lab.root} is locked by {lab.root / LOCK}, which is "
        f"{problem}: delete it if no run is using this lab folder\n"
    )
    assert (lab.root / LOCK).read_text() == content  # left as it was
    assert not lab.folder("raw").exists()  # nothing ran


def test_a_lock_held_by_a_zombie_is_taken_over(tmp_path):
    # A holder that has exited but is not yet reaped by its parent (here: this test) is a
    # zombie: psutil still finds its pid and start time; it was taken for a live run.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        process = psutil.Process(zombie.pid)
        started = process.create_time()
        deadline = time.monotonic() + 30
        while process.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.status() == psutil.STATUS_ZOMBIE
        lab = Lab(tmp_path / "lab")
        lab.root.mkdir()
        (lab.root / LOCK).write_text(lock(pid=zombie.pid, started=started))
        assert main(["run", "--only", "ingest", "--lab-dir", str(lab.root)]) == 0
        lab.require("raw")
        assert sorted(p.name for p in lab.root.iterdir()) == ["raw"]  # lock and marker gone
    finally:
        zombie.wait()


def test_a_stale_lock_is_taken_over_by_one_run_only(tmp_path, monkeypatch, capsys):
    # Two runs find the same stale lock. The second takes it over while the first is between
    # finding it stale and deleting it: the first used to delete the second's lock and run too.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lab = Lab(tmp_path / "lab")
        lab.root.mkdir()
        (lab.root / LOCK).write_text(lock(pid=gone.pid, started=started))
        real_alive, first_look = lab_lock.alive, []

        def alive(holder):
            if not first_look:  # the first run's look at the stale lock: the second runs now
                first_look.append(holder)
                process = psutil.Process(second.pid)
                identity = {"pid": second.pid, "started": process.create_time(), "host": HOST}
                with monkeypatch.context() as patch:
                    patch.setattr(lab_lock, "this_process", lambda: identity)
                    lab_lock.take(lab)
            return real_alive(holder)

        monkeypatch.setattr(lab_lock, "alive", alive)
        assert main(["run", "--only", "ingest", "--lab-dir", str(lab.root)]) == 2
        holder = json.loads((lab.root / LOCK).read_text())
        assert holder["pid"] == second.pid  # the second run's lock, untouched
        assert capsys.readouterr().err == (
            f"penguins run: lab folder {lab.root} is in use by another run (pid {second.pid} "
            f"on {HOST}, since {holder['since']}): wait for it to end or choose another lab "
            "folder\n"
        )
        assert not lab.folder("raw").exists()
    finally:
        second.kill()
        second.wait()


def test_a_lock_from_another_host_says_how_to_clear_it(tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    lab.root.mkdir()
    (lab.root / LOCK).write_text(lock(host="elsewhere.example", since="2024-05-01T10:00:00Z"))
    assert main(["run", "--only", "ingest", "--lab-dir", str(lab.root)]) == 2
    assert capsys.readouterr().err == (
        f"penguins run: lab folder {lab.root} is in use by a run on another host (pid 1 on "
        "elsewhere.example, since 2024-05-01T10:00:00Z), which this host cannot check: once "
        f"that run is over, delete {lab.root / LOCK}\n"
    )
    assert (lab.root / LOCK).exists() and not lab.folder("raw").exists()

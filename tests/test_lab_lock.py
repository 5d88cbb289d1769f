"""One local run a lab folder: a second is refused in one line naming the first; a lock left
by a process that is gone is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import psutil
from penguin_classifier.layout import LOCK, Lab
from test_cli import penguins_process  # the CLI in a process of its own

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

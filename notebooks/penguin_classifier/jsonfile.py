"""JSON files as the stages write and read them: indented, one trailing newline."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | os.PathLike, data) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())

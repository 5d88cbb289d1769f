"""What a stage's record says and what a reader checks: the files, their sizes and sha256, the
stage that committed them and the records of the folders it was built from (:func:`verify`); and
what a hand-over may replace (:func:`check_clearable`). :mod:`lab` and :mod:`handover` use
them.

A record is data from outside until checked: anyone who can write the folder can write it. Both
check it first (:func:`read_record`): its fields of the types the project writes, every name in
it a plain path inside its folder; then the folder holds exactly the files it lists, no links.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from pathlib import Path

from .errors import PenguinInputError

MANIFEST = "_manifest.json"

# The folder each stage commits, and the stage that commits it.
STAGES = {
    "raw": "01_ingest",
    "prepared": "02_prepare",
    "model": "03_model",
    "trained": "04_train",
    "evaluation": "05_evaluate",
    "distributed": "06_distribute",
}
SHA256 = re.compile(r"[0-9a-f]{64}")


def shortlist(names: list[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(folder: Path) -> dict[str, dict]:
    """``{relative path: {size, sha256}}`` of every file below ``folder`` but the record."""
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def inside(name) -> bool:
    """Whether ``name`` is a relative path that stays in its folder: no part empty, ``.`` or
    ``..`` (so not absolute either)."""
    parts = name.split("/") if isinstance(name, str) and "\0" not in name else [""]
    return all(part not in ("", ".", "..") for part in parts)


def sha256_hex(value) -> bool:
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


def record_problem(record) -> str | None:
    """What makes ``record`` (a record's parsed JSON) not one this project writes; ``None`` if
    nothing does."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not (isinstance(record.get("stage"), str) and re.fullmatch(r"\w+", record["stage"])):
        return "stage is not a name"
    pending = record.get("pending", False)
    if not isinstance(pending, bool):
        return "pending is not true or false"
    if not isinstance(record.get("parameters", {}), dict):
        return "parameters is not an object"
    files = record.get("files", {} if pending else None)
    if not isinstance(files, dict):
        return "files is not an object"
    for name, entry in files.items():
        if not inside(name):
            return f"file {name!r} is not a path inside its folder"
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if type(size) is not int or size < 0 or not sha256_hex(digest):
            return f"file {name!r} has no size and sha256"
    writes = record.get("writes", [])
    if not isinstance(writes, list):
        return "writes is not a list"
    for pattern in writes:  # matched against the names of the folder's own entries
        if not (inside(pattern) and "/" not in pattern):
            return f"writes {pattern!r}, not a name in its folder"
    inputs = record.get("inputs", {})
    if not isinstance(inputs, dict):
        return "inputs is not an object"
    for name, digest in inputs.items():
        if name not in STAGES:
            return f"input {name!r} is not a folder of the lab"
        if not sha256_hex(digest):
            return f"input {name!r} has no sha256"
    return None


def read_record(folder: Path) -> dict | None:
    """The folder's record, ``None`` without one; one that is not JSON or not a record of this
    project (:func:`record_problem`) raises, naming why."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise PenguinInputError(f"{path} is unreadable") from None
    problem = record_problem(record)
    if problem:
        raise PenguinInputError(f"{path} is not a record of this project ({problem})")
    return record


def links(folder: Path) -> list[str]:
    """The links below ``folder``. The project never links (volumes cannot): one was put there,
    and what a listed path reaches through it may be another folder's."""
    return [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_symlink()]


def unlisted(folder: Path, record: dict) -> list[str]:
    """The files below ``folder`` that its record does not list (the record aside)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST]
    names = [p.relative_to(folder).as_posix() for p in files]
    return [name for name in names if name not in (record.get("files") or {})]


def verify(folder: Path, stage: str) -> str:
    """The digest of the folder's record, once the record is ``stage``'s, the folder holds every
    file it lists, whole and unchanged, and nothing else, and every folder it was built from is
    still the one it read. Refusals end with what to run (:func:`run_again`, or ``run <stage>
    first``)."""
    again = run_again(stage)
    try:
        manifest = read_record(folder)
    except PenguinInputError as error:
        raise PenguinInputError(f"{error}: {again}") from None
    if manifest is None:
        raise PenguinInputError(f"{folder} is not committed (no {MANIFEST}): run {stage} first")
    if manifest.get("pending"):
        raise PenguinInputError(
            f"{folder} is not committed (a hand-over of {manifest['stage']} did not finish): "
            f"run {stage} first"
        )
    if manifest["stage"] != stage:
        raise PenguinInputError(
            f"{folder} holds a commit of {manifest['stage']}, not of {stage}: {again}"
        )
    linked = links(folder)
    if linked:
        raise PenguinInputError(f"{folder} holds links ({shortlist(linked)}): {again}")
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise PenguinInputError(f"{path} is missing: {again}")
        size = path.stat().st_size
        if size != expected["size"]:
            raise PenguinInputError(
                f"{path} has {size} bytes, {expected['size']} were committed: {again}"
            )
        if sha256(path) != expected["sha256"]:
            raise PenguinInputError(f"{path} changed after it was committed: {again}")
    extra = unlisted(folder, manifest)
    if extra:  # a record with an entry taken out would leave that file unchecked
        raise PenguinInputError(
            f"{folder} holds files {manifest['stage']} did not commit ({shortlist(extra)}): {again}"
        )
    for name, digest in manifest.get("inputs", {}).items():
        source = folder.parent / name / MANIFEST
        if not source.is_file() or sha256(source) != digest:
            raise PenguinInputError(
                f"{folder} was built from an older {folder.parent / name}: {again}"
            )
    return sha256(folder / MANIFEST)


def run_again(stage: str) -> str:
    """What to run when ``stage``'s commit is damaged or stale: it and every stage after it, in
    the lab's order, since each records the commit of the one before it, so that all of them are
    named at once (``run 03_model, 04_train, 05_evaluate, 06_distribute again``). ``penguins
    run`` turns this ending into the command to paste (penguins/runner.py)."""
    order = list(dict.fromkeys(STAGES.values()))
    chain = order[order.index(stage) :] if stage in order else [stage]
    return f"run {', '.join(chain)} again"


def check_clearable(folder: Path, stage: str) -> list[Path]:
    """What a hand-over of ``stage`` may remove from ``folder``: the files an earlier commit of
    ``stage`` lists, or the entries an unfinished hand-over named in its pending record
    (``writes``). Anything else in the folder, or a record this project did not write, is
    refused before anything is touched: the project deletes only what it wrote."""
    if folder.exists() and not folder.is_dir():
        raise PenguinInputError(f"{folder} is a file, not a folder: {stage} writes a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return []
    refuse = f"{stage} will not replace {folder}"
    try:
        record = read_record(folder)
    except PenguinInputError as error:
        raise PenguinInputError(f"{refuse}: {error}") from None
    if record is None:
        names = shortlist(sorted(p.name for p in folder.iterdir()))
        raise PenguinInputError(
            f"{refuse}: it holds files this project did not write ({names}); "
            "choose an empty or new folder"
        )
    if record["stage"] != stage:
        raise PenguinInputError(f"{refuse}: it holds a commit of {record['stage']}")
    linked = links(folder)
    if linked:
        raise PenguinInputError(f"{refuse}: it holds links ({shortlist(linked)}); move them away")
    if record.get("pending"):  # top-level entries the unfinished hand-over said it writes
        writes = record.get("writes", [])
        entries = [p for p in sorted(folder.iterdir()) if p.name != MANIFEST]
        extra = [p.name for p in entries if not any(fnmatch.fnmatch(p.name, w) for w in writes)]
        done = f"its unfinished hand-over of {record['stage']} did not write"
        if extra:
            raise PenguinInputError(f"{refuse}: {done} {shortlist(extra)}; move them away first")
        return entries
    extra = unlisted(folder, record)
    if extra:
        raise PenguinInputError(
            f"{refuse}: it holds files {record['stage']} did not commit "
            f"({shortlist(extra)}); move them away first"
        )
    return [folder / name for name in sorted(record["files"])]

"""What a stage's record says and what a reader checks: the files, their sizes and sha256, the
stage that committed them and the records of the folders it was built from (:func:`verify`); and
what a hand-over may replace (:func:`check_clearable`). :mod:`layout` uses them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path

from .errors import PenguinInputError

MANIFEST = "_manifest.json"


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


def read_record(folder: Path) -> dict | None:
    """The folder's record, ``None`` without one; a record that is not a JSON object raises."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("stage"), str):
        raise PenguinInputError(f"{path} is unreadable")
    return record


def verify(folder: Path, stage: str) -> str:
    """The digest of the folder's record, once the record is ``stage``'s, every file it lists is
    there, whole and unchanged, and every folder it was built from is still the one it read."""
    again = f"run {stage} again"
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
    if manifest["stage"] not in writers(folder.name, stage):
        raise PenguinInputError(
            f"{folder} holds a commit of {manifest['stage']}, not of {stage}: {again}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise PenguinInputError(f"{folder / MANIFEST} is unreadable: {again}")
    for name, expected in files.items():
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
    for name, digest in manifest.get("inputs", {}).items():
        source = folder.parent / name / MANIFEST
        if not source.is_file() or sha256(source) != digest:
            raise PenguinInputError(
                f"{folder} was built from an older {folder.parent / name}: {again}"
            )
    return sha256(folder / MANIFEST)


# metrics/ is committed again by each tracked stage; any other folder by its own stage.
METRICS_WRITERS = ("04_train", "05_evaluate", "06_distribute")


def writers(folder_name: str, stage: str) -> tuple[str, ...]:
    return METRICS_WRITERS if folder_name == "metrics" and stage in METRICS_WRITERS else (stage,)


def check_clearable(folder: Path, stage: str, replaces: tuple[str, ...]) -> list[Path]:
    """What a hand-over of ``stage`` may remove from ``folder``: the files an earlier commit of
    ``replaces`` lists, or the entries an unfinished hand-over named in its pending record
    (``writes``). Anything else in the folder is refused, before anything is touched: the
    project deletes only what it wrote."""
    if folder.exists() and not folder.is_dir():
        raise PenguinInputError(f"{folder} is a file, not a folder: {stage} writes a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return []
    refuse = f"{stage} will not replace {folder}"
    try:
        record = read_record(folder)
    except PenguinInputError:
        raise PenguinInputError(
            f"{refuse}: its {MANIFEST} is not a record of this project"
        ) from None
    if record is None:
        names = shortlist(sorted(p.name for p in folder.iterdir()))
        raise PenguinInputError(
            f"{refuse}: it holds files this project did not write ({names}); "
            "choose an empty or new folder"
        )
    if record["stage"] not in replaces:
        raise PenguinInputError(f"{refuse}: it holds a commit of {record['stage']}")
    # The project never links (volumes cannot): a link was put there, and removing what it
    # leads to, or what a listed path reaches through it, could delete another folder's files.
    links = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_symlink()]
    if links:
        raise PenguinInputError(f"{refuse}: it holds links ({shortlist(links)}); move them away")
    if record.get("pending"):  # top-level entries the unfinished hand-over said it writes
        writes = record.get("writes") or []
        entries = [p for p in sorted(folder.iterdir()) if p.name != MANIFEST]
        extra = [p.name for p in entries if not any(fnmatch.fnmatch(p.name, w) for w in writes)]
        done = f"its unfinished hand-over of {record['stage']} did not write"
        if extra:
            raise PenguinInputError(f"{refuse}: {done} {shortlist(extra)}; move them away first")
        return entries
    listed = set(record.get("files") or {})
    extra = [
        p.relative_to(folder).as_posix()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST and p.relative_to(folder).as_posix() not in listed
    ]
    if extra:
        raise PenguinInputError(
            f"{refuse}: it holds files {record['stage']} did not commit "
            f"({shortlist(extra)}); move them away first"
        )
    return [folder / name for name in sorted(listed)]

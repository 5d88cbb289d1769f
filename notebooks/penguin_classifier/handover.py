"""How a stage hands its folder of the lab folder over: a transaction that ends with the record.

On Databricks the lab folder is a Unity Catalog volume, a FUSE mount where ``rename`` and ``link``
fail with ENOSYS and files cannot be appended to or rewritten in place (Databricks: "work on local
disk, then copy"). So a stage never renames anything in the lab folder: a :class:`Handover`
replaces the folder's record by a pending one, lets the stage build its files on local disk,
copies them in with plain sequential writes and writes the record last. Readers
(:meth:`lab.Lab.require`) use only a folder whose record is whole and current.

The project deletes only what it wrote: a hand-over replaces a folder only when it is empty or
holds an earlier commit of the same stage and nothing else (:func:`records.check_clearable`).
Anything else is refused before anything is touched, and so is a record whose fields are not of
the types the project writes or that names a path outside its folder
(:func:`records.read_record`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .jsonfile import write_json
from .records import MANIFEST, check_clearable, describe


class Handover:
    """A stage's hand-over of its folder, begun when created and finished by :meth:`commit`.

    Creating it refuses a folder holding anything but an earlier commit of the same stage
    (:func:`check_clearable`), then replaces the old record by a *pending* one (the folder stays
    the stage's, uncommitted, if the stage stops midway) and removes exactly the files the old
    record listed. The stage builds its files in ``local``, a temporary folder on local disk;
    what it writes straight into ``folder`` (Spark's Parquet, the ranks' run folder) it names in
    ``writes`` (top-level names, ``fnmatch`` patterns), which the pending record keeps, so that a
    stage stopped midway can be cleared, and nothing else. :meth:`commit` names the local files
    in the pending record too, copies them in (plain sequential writes), then writes the record
    listing every file of ``folder`` and ``inputs``: the digest of each lab folder's record it
    was built from (:meth:`lab.Lab.require`). A stage that fails before :meth:`commit` leaves its
    folder uncommitted: no reader will use it.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        stage: str,
        parameters: dict | None = None,
        inputs: dict[str, str] | None = None,
        writes: tuple[str, ...] = (),
    ):
        self.folder, self.stage, self.parameters = Path(folder), stage, parameters or {}
        self.inputs, self.writes = inputs or {}, tuple(writes)
        ours = check_clearable(self.folder, stage)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending(self.writes)
        for path in ours:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        for path in sorted(self.folder.rglob("*"), reverse=True):  # folders the files left empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        self._local = tempfile.TemporaryDirectory(prefix=f"penguins-{self.folder.name}-")
        self.local = Path(self._local.name)

    def _pending(self, writes) -> None:
        """Replace the folder's record by a pending one naming what the stage writes into it."""
        record = {"stage": self.stage, "pending": True, "parameters": self.parameters}
        (self.folder / MANIFEST).unlink(missing_ok=True)  # a delete and a new file, no rewrite
        write_json(self.folder / MANIFEST, {**record, "writes": sorted(writes)})

    def commit(self) -> dict:
        """Copy the local files in, then write the record; return it."""
        self._pending({*self.writes, *(p.name for p in self.local.iterdir())})
        for path in sorted(self.local.rglob("*")):
            target = self.folder / path.relative_to(self.local)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                shutil.copyfile(path, target)
        self.close()
        manifest = {
            "stage": self.stage,
            "parameters": self.parameters,
            "inputs": self.inputs,
            "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": describe(self.folder),
        }
        # The pending record goes, the record comes: a delete and a new file, never a rewrite.
        (self.folder / MANIFEST).unlink()
        write_json(self.folder / MANIFEST, manifest)
        return manifest

    def close(self) -> None:
        """Remove the local folder (``commit`` does); the lab folder stays as it is."""
        self._local.cleanup()


@contextmanager
def handover(folder: str | os.PathLike, stage: str, *args, **kwargs):
    """``with handover(folder, stage, ...) as out:`` (:class:`Handover`'s arguments) build the
    files in ``out``; commit on success."""
    stage_handover = Handover(folder, stage, *args, **kwargs)
    try:
        yield stage_handover.local
        stage_handover.commit()
    finally:
        stage_handover.close()

"""A Unity Catalog volume's rules for a folder on local disk, in this process and its children.

On Databricks ``/Volumes/...`` is a FUSE mount: ``rename`` and ``link`` fail with ENOSYS
(earth-mover/icechunk#2341) and files cannot be appended to or updated in place. ``install(root)``
makes every path below ``root`` behave so; ``sitecustomize.py`` beside this file installs it in
every Python process started with ``PENGUINS_TEST_VOLUME`` set and this folder on ``PYTHONPATH``
(Spark's Python workers, TorchDistributor's and Horovod's ranks, the CLI in a subprocess).
"""

from __future__ import annotations

import builtins
import errno
import io
import os

VARIABLE = "PENGUINS_TEST_VOLUME"


def install(root: str) -> None:
    root = os.path.realpath(root)

    def inside(path) -> bool:
        if isinstance(path, int):
            return False
        path = os.path.realpath(os.fsdecode(path))
        return path == root or path.startswith(root + os.sep)

    def no_rename(original):
        def call(src, dst, *args, **kwargs):
            if inside(src) or inside(dst):
                raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), os.fsdecode(dst))
            return original(src, dst, *args, **kwargs)

        return call

    for name in ("rename", "replace", "link", "symlink"):
        setattr(os, name, no_rename(getattr(os, name)))

    def no_update(path) -> OSError:
        message = "volumes do not support appends or updates in place"
        return OSError(errno.EOPNOTSUPP, message, os.fsdecode(path))

    original_open = io.open

    def volume_open(file, mode="r", *args, **kwargs):
        if ("a" in mode or "+" in mode) and inside(file):
            raise no_update(file)
        return original_open(file, mode, *args, **kwargs)

    io.open = builtins.open = volume_open

    original_os_open = os.open

    def volume_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_APPEND | os.O_RDWR) and inside(path):
            raise no_update(path)
        return original_os_open(path, flags, *args, **kwargs)

    os.open = volume_os_open

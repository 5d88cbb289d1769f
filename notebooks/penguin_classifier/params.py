"""Read notebook widgets into typed values, failing fast with one clear line."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import PenguinInputError
from .lab import Lab
from .records import STAGES, check_clearable
from .runtime import on_databricks


def text(dbutils, name: str) -> str:
    return dbutils.widgets.get(name).strip()


def integer(dbutils, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer, from ``minimum`` to ``maximum`` (both included) where they are given.

    A bound is a parameter's documented range: a value past it would overflow a library (a
    seed past numpy's 2**32 - 1) or ask for more memory or time than any lab run needs.
    """
    value = text(dbutils, name)
    try:
        number = int(value)
    except ValueError:
        raise PenguinInputError(f"parameter {name}: {value!r} is not an integer") from None
    below = minimum is not None and number < minimum
    above = maximum is not None and number > maximum
    if below or above:
        if minimum is not None and maximum is not None:
            wrong = f"not between {minimum} and {maximum}"
        else:
            wrong = f"below {minimum}" if below else f"above {maximum}"
        raise PenguinInputError(f"parameter {name}: {number} is {wrong}")
    return number


def number(dbutils, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number, above ``low`` and below ``high`` where they are given.

    Written as ``low < result < high`` holding, not as a bound broken: NaN compares false with
    both, and inf is above any ``low``.
    """
    value = text(dbutils, name)
    try:
        result = float(value)
    except ValueError:
        raise PenguinInputError(f"parameter {name}: {value!r} is not a number") from None
    above = low is None or result > low
    below = high is None or result < high
    if not (math.isfinite(result) and above and below):
        bounds = [f"above {low}"] * (low is not None) + [f"below {high}"] * (high is not None)
        wanted = " ".join(["a finite number", " and ".join(bounds)]).strip()
        raise PenguinInputError(f"parameter {name}: {value} is not {wanted}")
    return result


def choice(dbutils, name: str, options: list[str]) -> str:
    value = text(dbutils, name)
    if value not in options:
        raise PenguinInputError(f"parameter {name}: {value!r} is not one of {options}")
    return value


def lab_dir(dbutils) -> Lab:
    """The lab folder; on Databricks it must be a Unity Catalog volume path.

    Since Runtime 14 Python resolves a relative path against the notebook's workspace folder
    but Spark does not, so the stages would read and write different places.
    """
    value = text(dbutils, "lab_dir")
    if not value:
        raise PenguinInputError("parameter lab_dir is empty: set it to the lab folder")
    if on_databricks() and not value.startswith("/Volumes/"):
        raise PenguinInputError(
            f"parameter lab_dir: {value!r} is not a volume path; on Databricks set lab_dir to "
            "/Volumes/<catalog>/<schema>/<volume> (the bundle's job passes it)"
        )
    return Lab(value).check()


def output_folder(dbutils, lab: Lab, source: str) -> str:
    """The scoring job's ``output`` (default ``<lab_dir>/scored``), refused when it is the lab
    folder, a folder above it, a stage's folder or a folder inside one, or deeper in the lab
    than its own folders (that would block the stage, or the lab), when it holds the input, or
    when it holds anything but an earlier scoring commit."""
    value = text(dbutils, "output") or str(lab.folder("scored"))
    output = Path(value).resolve()
    root = lab.root.resolve()
    if output == root or root.is_relative_to(output):
        raise PenguinInputError(f"parameter output: {value} holds the lab folder {lab.root}")
    if output.is_relative_to(root):
        top = output.relative_to(root).parts[0]
        where = "is the folder" if output.parent == root else "is inside the folder"
        if top in STAGES:
            raise PenguinInputError(f"parameter output: {value} {where} of {STAGES[top]}")
        if output.parent != root:
            raise PenguinInputError(
                f"parameter output: {value} is inside {lab.folder(top)}: choose a folder "
                f"directly in the lab folder (default {lab.folder('scored')}) or outside it"
            )
    if "/" in source and Path(source).resolve().is_relative_to(output):
        raise PenguinInputError(f"parameter output: {value} holds the input {source}")
    check_clearable(Path(value), "07_score")  # before any work, not after
    return value

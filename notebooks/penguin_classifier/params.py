"""Read notebook widgets into typed values, failing fast with one clear line."""

from __future__ import annotations

from .errors import PenguinInputError
from .layout import Lab
from .runtime import on_databricks


def text(dbutils, name: str) -> str:
    return dbutils.widgets.get(name).strip()


def integer(dbutils, name: str, minimum: int | None = None) -> int:
    value = text(dbutils, name)
    try:
        number = int(value)
    except ValueError:
        raise PenguinInputError(f"parameter {name}: {value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise PenguinInputError(f"parameter {name}: {number} is below {minimum}")
    return number


def number(dbutils, name: str, low: float | None = None, high: float | None = None) -> float:
    value = text(dbutils, name)
    try:
        result = float(value)
    except ValueError:
        raise PenguinInputError(f"parameter {name}: {value!r} is not a number") from None
    if (low is not None and result <= low) or (high is not None and result >= high):
        raise PenguinInputError(f"parameter {name}: {result} is not between {low} and {high}")
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
    return Lab(value)

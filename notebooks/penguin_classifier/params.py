"""Read notebook widgets into typed values, failing fast with one clear line."""

from __future__ import annotations

from .errors import PenguinInputError


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

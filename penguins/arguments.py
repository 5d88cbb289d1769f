"""argparse pieces for the ``penguins`` command: value types, and errors as one line."""

from __future__ import annotations

import argparse
import math

from penguin_classifier.features import MEASUREMENT, is_measurement


class OneLineParser(argparse.ArgumentParser):
    """An error is one line, as for every bad input: ``penguins bench: argument --epochs: 0 is
    below 1``, exit status 2 (argparse's own adds a usage line)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def name_value(text: str) -> tuple[str, str]:
    """``epochs=5`` → ``("epochs", "5")``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return name, value


def positive_number(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return number


def measurement(text: str) -> float:
    """A penguin's measurement: positive, and held by the model's float32 (``1e39`` is not)."""
    number = positive_number(text)
    if not is_measurement(number):
        raise argparse.ArgumentTypeError(f"{text} is not {MEASUREMENT}")
    return number


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is below 1")
    return number


def comma_list(text: str) -> list[str]:
    """``ingest,prepare`` → ``["ingest", "prepare"]``."""
    return text.split(",")

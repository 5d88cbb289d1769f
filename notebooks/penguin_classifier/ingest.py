"""The checks of notebook 01: read a source CSV and refuse, in one line, what the lab cannot use.

The source may be a local path, a ``/Volumes/...`` path (a local path on Databricks) or an
http(s) URL such as the lab's. 01 writes the rows these checks return to ``raw/penguins.csv``,
which 02 reads with Spark: so a value passes here only if Spark reads it the same way.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from pathlib import Path

from .errors import PenguinInputError
from .features import COLUMNS, MEASUREMENT, MEASUREMENTS, MISSING, is_measurement


def read_source(source: str) -> bytes:
    """The bytes of a local file or an http(s) URL; a clear error when neither is there."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=60) as response:
                return response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise PenguinInputError(f"cannot download source {source}: {err}") from None
    path = Path(source)
    if not path.is_file():
        raise PenguinInputError(f"source not found: {source}")
    return path.read_bytes()


def parse_rows(data: bytes, name: str) -> list[dict[str, str]]:
    """Check and parse the CSV: header, required columns, numbers, species codes, islands."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PenguinInputError(f"{name}: not UTF-8 text ({err.reason})") from None
    if not text.strip():
        raise PenguinInputError(f"{name}: file is empty")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PenguinInputError(
            f"{name}: missing required column {', '.join(missing)} (found: {', '.join(header)})"
        )
    rows = []
    for line, raw in enumerate(reader, start=2):
        if not any((v or "").strip() for v in raw.values()):
            continue  # blank line
        row = {c: (raw.get(c) or "").strip() for c in COLUMNS}
        for column in MEASUREMENTS:
            check_number(row[column], name, line, column)
        if row["Species"] not in {"0", "1", "2"}:
            raise PenguinInputError(
                f"{name} line {line}: column Species: {row['Species']!r} is not 0, 1 or 2"
            )
        check_island(row["Island"], name, line)
        rows.append(row)
    if not rows:
        raise PenguinInputError(f"{name}: no data rows after the header")
    return rows


def check_number(value: str, name: str, line: int, column: str) -> None:
    if value in MISSING:
        return
    try:
        number = float(value)
    except ValueError:
        number = None
    # Python's float also reads 1_000 and non-ASCII digits (١٢); Spark's cast, in 02, fails.
    if number is None or not value.isascii() or "_" in value:
        raise PenguinInputError(f"{name} line {line}: column {column}: {value!r} is not a number")
    if not is_measurement(number):
        raise PenguinInputError(
            f"{name} line {line}: column {column}: {value!r} is not {MEASUREMENT}"
        )


def check_island(value: str, name: str, line: int) -> None:
    if not value:
        raise PenguinInputError(f"{name} line {line}: column Island is empty")
    # Spark's CSV reader, in 02, splits a quoted line break into two rows and keeps the quotes
    # around a doubled quote: the island would silently become another one.
    if '"' in value or not value.isprintable():
        raise PenguinInputError(
            f"{name} line {line}: column Island: {value!r} holds a quote or a control character"
        )

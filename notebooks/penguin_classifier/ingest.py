"""Stage 1, ingest: copy the source CSV into the lab folder after checking it.

The source may be a local path, a ``/Volumes/...`` path (a local path on Databricks) or an
http(s) URL such as the lab's. The copy is written in the lab's format: the six required columns
in the lab's order, LF line endings, no byte-order mark.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import PenguinInputError
from .features import COLUMNS, MEASUREMENT, MEASUREMENTS, MISSING, is_measurement
from .layout import Handover, Lab

LAB_URL = (
    "https://raw.githubusercontent.com/MicrosoftLearning/mslearn-databricks/main/data/penguins.csv"
)


@dataclass
class IngestReport:
    path: Path
    rows: int
    incomplete: list[dict[str, str]]  # rows with a missing value, numbered from 1

    def summary(self) -> str:
        lines = [f"{self.rows} rows written to {self.path}"]
        lines.append(f"{len(self.incomplete)} rows with missing values:")
        for row in self.incomplete:
            lines.append("  " + ", ".join(f"{k}={v!s}" for k, v in row.items()))
        return "\n".join(lines)


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
    """Check and parse the CSV: header, required columns, numbers, species codes."""
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
        if not row["Island"]:
            raise PenguinInputError(f"{name} line {line}: column Island is empty")
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
        raise PenguinInputError(
            f"{name} line {line}: column {column}: {value!r} is not a number"
        ) from None
    if not is_measurement(number):
        raise PenguinInputError(
            f"{name} line {line}: column {column}: {value!r} is not {MEASUREMENT}"
        )


def incomplete_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows with a missing measurement, numbered from 1: 02_prepare will drop them."""
    return [
        {"row": i, **row}
        for i, row in enumerate(rows, start=1)
        if any(row[c] in MISSING for c in MEASUREMENTS)
    ]


def save_raw(handover: Handover, lab: Lab, rows: list[dict[str, str]]) -> IngestReport:
    """Write ``raw/penguins.csv`` in the lab's format and commit it."""
    with open(handover.local / lab.raw.name, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row[c] in MISSING else row[c] for c in COLUMNS})
    handover.commit()
    return IngestReport(lab.raw, len(rows), incomplete_rows(rows))


def ingest(source: str, lab: Lab) -> IngestReport:
    """The whole stage, as notebook 01 runs it step by step: ``source`` to ``raw/``."""
    handover = Handover(lab.raw.parent, "01_ingest", {"source": str(source)})
    return save_raw(handover, lab, parse_rows(read_source(str(source)), str(source)))

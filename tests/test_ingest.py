"""Stage 1: the source CSV is checked and copied in the lab's format, or refused with one line."""

from __future__ import annotations

import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.features import COLUMNS
from penguin_classifier.ingest import ingest, parse_rows
from penguin_classifier.layout import Lab
from penguin_classifier.runtime import shipped_data

DATA = shipped_data()

HEADER = ",".join(COLUMNS)


def test_shipped_data_is_copied_with_its_two_incomplete_rows(tmp_path):
    lab = Lab(tmp_path)
    report = ingest(str(DATA), lab)
    # 344 penguins; the two without measurements are rows 4 (Torgersen) and 272 (Biscoe).
    assert report.rows == 344
    assert [(r["row"], r["Island"], r["Species"]) for r in report.incomplete] == [
        (4, "Torgersen", "0"),
        (272, "Biscoe", "1"),
    ]
    # The shipped file is already in the lab's format, so the copy is byte for byte the same.
    assert lab.raw.read_bytes() == DATA.read_bytes()
    lab.require("raw")  # committed


def test_crlf_bom_extra_and_reordered_columns_are_read_correctly(tmp_path):
    text = (
        "\ufeffSpecies,Sex,BodyMass,Island,FlipperLength,CulmenDepth,CulmenLength\r\n"
        "0,male,3750,Torgersen,181,18.7,39.1\r\n"
        "1,female,,Biscoe,,,\r\n"
    )
    source = tmp_path / "odd.csv"
    source.write_bytes(text.encode("utf-8"))
    report = ingest(str(source), Lab(tmp_path))
    assert report.rows == 2
    assert Lab(tmp_path).raw.read_text() == (
        f"{HEADER}\nTorgersen,39.1,18.7,181,3750,0\nBiscoe,,,,,1\n"
    )


NOT_MEASUREMENT = r"is not a positive number up to 3\.4e38 \(float32\)$"
BAD_INPUTS = [
    # (file content or None for a missing file, expected message)
    (None, r"source not found: .*missing\.csv"),
    ("", r"bad\.csv: file is empty"),
    (HEADER + "\n", r"bad\.csv: no data rows after the header"),
    (
        "Island,CulmenLength,CulmenDepth,FlipperLength,Species\nDream,1,2,3,0\n",
        r"bad\.csv: missing required column BodyMass \(found: Island, .*\)",
    ),
    (
        HEADER + "\nDream,39.1,abc,181,3750,0\n",
        r"bad\.csv line 2: column CulmenDepth: 'abc' is not a number",
    ),
    (
        HEADER + "\nDream,39.1,18.7,-181,3750,0\n",
        r"bad\.csv line 2: column FlipperLength: '-181' " + NOT_MEASUREMENT,
    ),
    (
        HEADER + "\nDream,39.1,18.7,0,3750,0\n",
        r"bad\.csv line 2: column FlipperLength: '0' " + NOT_MEASUREMENT,
    ),
    # Finite as a Python float, infinite as the model's float32: it once trained a 44 % model.
    (
        HEADER + "\nDream,39.1,18.7,181,1e39,0\n",
        r"bad\.csv line 2: column BodyMass: '1e39' " + NOT_MEASUREMENT,
    ),
    (
        HEADER + "\nDream,39.1,inf,181,3750,0\n",
        r"bad\.csv line 2: column CulmenDepth: 'inf' " + NOT_MEASUREMENT,
    ),
    (HEADER + "\nDream,39.1,18.7,181,3750,7\n", r"bad\.csv line 2: column Species: '7'"),
    (HEADER + "\n,39.1,18.7,181,3750,0\n", r"bad\.csv line 2: column Island is empty"),
]


@pytest.mark.parametrize(("content", "message"), BAD_INPUTS)
def test_bad_sources_are_refused_and_nothing_is_committed(tmp_path, content, message):
    source = tmp_path / ("missing.csv" if content is None else "bad.csv")
    if content is not None:
        source.write_text(content)
    lab = Lab(tmp_path / "lab")
    with pytest.raises(PenguinInputError, match=message):
        ingest(str(source), lab)
    with pytest.raises(PenguinInputError, match="not committed .* run 01_ingest first"):
        lab.require("raw")


def test_a_failed_ingest_leaves_no_copy_a_later_stage_would_use(tmp_path):
    lab = Lab(tmp_path / "lab")
    ingest(str(DATA), lab)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\nDream,x,1,1,1,0\n")
    with pytest.raises(PenguinInputError):
        ingest(str(bad), lab)
    # The old copy came from another source: using it would train on data nobody asked for.
    with pytest.raises(PenguinInputError, match="not committed .* run 01_ingest first"):
        lab.require("raw")


def test_unreachable_url_is_one_clear_error(tmp_path):
    # Port 9 on the loopback address: nothing listens there, so the connection is refused.
    with pytest.raises(PenguinInputError, match=r"cannot download source http://127\.0\.0\.1:9/"):
        ingest("http://127.0.0.1:9/penguins.csv", Lab(tmp_path))


def test_non_utf8_bytes_are_refused():
    with pytest.raises(PenguinInputError, match="not UTF-8"):
        parse_rows(b"\xff\xfe\x00", "x.csv")

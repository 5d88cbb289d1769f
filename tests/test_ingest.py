"""Stage 1, notebook 01 run as the job runs it: the source CSV is checked and copied in the lab's
format, or refused with one line and exit 2. Ingest starts no Spark, so these runs are quick."""

from __future__ import annotations

import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.features import COLUMNS
from penguin_classifier.lab import Lab
from penguin_classifier.runtime import shipped_data

from penguins.cli import main

DATA = shipped_data()

HEADER = ",".join(COLUMNS)


def ingest(capsys, source, lab: Lab) -> tuple[int, str, list[str]]:
    """``penguins run --only ingest``: exit status, stdout and stderr's lines."""
    status = main(["run", "--only", "ingest", "--lab-dir", str(lab.root), "--source", str(source)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


def test_shipped_data_is_copied_with_its_two_incomplete_rows(tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    status, out, err = ingest(capsys, DATA, lab)
    assert (status, err) == (0, [])
    # 344 penguins; the two without measurements are rows 4 (Torgersen) and 272 (Biscoe).
    assert f"344 rows committed to {lab.raw}, 2 with missing values\n" in out
    lines = lab.raw.read_text().splitlines()
    assert [(i, line) for i, line in enumerate(lines) if ",,,," in line] == [
        (4, "Torgersen,,,,,0"),
        (272, "Biscoe,,,,,1"),
    ]
    # The shipped file is already in the lab's format, so the copy is byte for byte the same.
    assert lab.raw.read_bytes() == DATA.read_bytes()
    lab.require("raw")  # committed


def test_crlf_bom_extra_and_reordered_columns_are_read_correctly(tmp_path, capsys):
    text = (
        "\ufeffSpecies,Sex,BodyMass,Island,FlipperLength,CulmenDepth,CulmenLength\r\n"
        "0,male,3750,Torgersen,181,18.7,39.1\r\n"
        "1,female,NA,Biscoe,,,\r\n"
    )
    source = tmp_path / "odd.csv"
    source.write_bytes(text.encode("utf-8"))
    lab = Lab(tmp_path / "lab")
    assert ingest(capsys, source, lab)[0] == 0
    # The lab's column order, LF, no BOM, Sex dropped, NA written as an empty value.
    assert lab.raw.read_text() == f"{HEADER}\nTorgersen,39.1,18.7,181,3750,0\nBiscoe,,,,,1\n"


NOT_MEASUREMENT = "is not a positive number up to 3.4e38 (float32)"
BAD_INPUTS = [
    # (file content, or None for a missing file; the message after "{source}")
    (None, "source not found: {source}"),
    (b"", "{source}: file is empty"),
    (b"\xff\xfe\x00", "{source}: not UTF-8 text (invalid start byte)"),
    (HEADER + "\n", "{source}: no data rows after the header"),
    (
        "Island,CulmenLength,CulmenDepth,FlipperLength,Species\nDream,1,2,3,0\n",
        "{source}: missing required column BodyMass (found: Island, CulmenLength, CulmenDepth, "
        "FlipperLength, Species)",
    ),
    (
        HEADER + "\nDream,39.1,abc,181,3750,0\n",
        "{source} line 2: column CulmenDepth: 'abc' is not a number",
    ),
    # Numbers to Python's float, not to Spark's cast in 02 (once a 40-line CAST_INVALID_INPUT).
    (
        HEADER + "\nDream,39.1,18.7,181,3_750,0\n",
        "{source} line 2: column BodyMass: '3_750' is not a number",
    ),
    (
        HEADER + "\nDream,39.1,18.7,\u0661\u0668\u0661,3750,0\n",  # Arabic-Indic 181
        "{source} line 2: column FlipperLength: '\u0661\u0668\u0661' is not a number",
    ),
    (
        HEADER + "\nDream,39.1,18.7,-181,3750,0\n",
        "{source} line 2: column FlipperLength: '-181' " + NOT_MEASUREMENT,
    ),
    (
        HEADER + "\nDream,39.1,18.7,0,3750,0\n",
        "{source} line 2: column FlipperLength: '0' " + NOT_MEASUREMENT,
    ),
    # Finite as a Python float, infinite as the model's float32: it once trained a 44 % model.
    (
        HEADER + "\nDream,39.1,18.7,181,1e39,0\n",
        "{source} line 2: column BodyMass: '1e39' " + NOT_MEASUREMENT,
    ),
    (
        HEADER + "\nDream,39.1,inf,181,3750,0\n",
        "{source} line 2: column CulmenDepth: 'inf' " + NOT_MEASUREMENT,
    ),
    (
        HEADER + "\nDream,39.1,18.7,181,3750,7\n",
        "{source} line 2: column Species: '7' is not 0, 1 or 2",
    ),
    (HEADER + "\n,39.1,18.7,181,3750,0\n", "{source} line 2: column Island is empty"),
    # Spark's CSV reader in 02 would read two rows, islands 'Dre' and 'am"'.
    (
        HEADER + '\n"Dre\nam",39.1,18.7,181,3750,0\n',
        "{source} line 2: column Island: 'Dre\\nam' holds a quote or a control character",
    ),
    # ... and the island '"Dre""am"', quotes included.
    (
        HEADER + '\n"Dre""am",39.1,18.7,181,3750,0\n',
        "{source} line 2: column Island: 'Dre\"am' holds a quote or a control character",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_INPUTS)
def test_bad_sources_are_one_line_and_nothing_is_committed(tmp_path, capsys, content, message):
    source = tmp_path / ("missing.csv" if content is None else "bad.csv")
    if content is not None:
        source.write_bytes(content if isinstance(content, bytes) else content.encode())
    lab = Lab(tmp_path / "lab")
    status, _, err = ingest(capsys, source, lab)
    assert (status, err) == (2, ["penguins run: ingest: " + message.format(source=source)])
    with pytest.raises(PenguinInputError, match="not committed .* run 01_ingest first"):
        lab.require("raw")


def test_a_failed_ingest_leaves_no_copy_a_later_stage_would_use(tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    assert ingest(capsys, DATA, lab)[0] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\nDream,x,1,1,1,0\n")
    assert ingest(capsys, bad, lab)[0] == 2
    # The old copy came from another source: using it would train on data nobody asked for.
    with pytest.raises(PenguinInputError, match="not committed .* run 01_ingest first"):
        lab.require("raw")


def test_unreachable_url_is_one_line(tmp_path, capsys):
    # Port 9 on the loopback address: nothing listens there, so the connection is refused.
    url = "http://127.0.0.1:9/penguins.csv"
    status, _, err = ingest(capsys, url, Lab(tmp_path / "lab"))
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"penguins run: ingest: cannot download source {url}: ")

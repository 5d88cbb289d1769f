"""Stage 2: exact row counts, vocabulary, scaling, and a split made before oversampling."""

from __future__ import annotations

import pandas as pd
import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.evaluate import evaluate_stage
from penguin_classifier.ingest import ingest
from penguin_classifier.layout import Lab, read_json
from penguin_classifier.model import new_model, save_initial_model
from penguin_classifier.prepare import (
    FEATURES,
    clean,
    encode,
    island_vocabulary,
    prepare,
    read_raw,
    split_sizes,
)
from penguin_classifier.runtime import shipped_data
from penguin_classifier.train import train_stage

DATA = shipped_data()


def test_counts_vocabulary_and_split_sizes(lab):
    spec = read_json(lab.features)
    # 344 rows less the 2 without measurements.
    assert spec["rows"]["complete"] == 342
    # Per species round(0.3 * n) go to test: Adelie 151 → 45, Gentoo 123 → 37, Chinstrap 68 → 20.
    test = pd.read_parquet(lab.test)
    assert test["Species"].value_counts().sort_index().tolist() == [45, 37, 20]
    assert spec["rows"]["test"] == 102
    assert spec["rows"]["train"] == 240
    train = pd.read_parquet(lab.train)
    assert len(train) == 960 == spec["rows"]["train_oversampled"]  # 240 rows, 4 copies
    assert spec["islands"] == ["Biscoe", "Dream", "Torgersen"]
    assert spec["features"] == FEATURES
    assert list(train.columns) == [*FEATURES, "Species"]


def test_oversampling_happens_after_the_split(lab):
    train = pd.read_parquet(lab.train)
    test = pd.read_parquet(lab.test)
    # No test row (by all its values) appears among the training rows.
    merged = test.merge(train.drop_duplicates(), how="inner")
    assert merged.empty
    # Training is the same 240 rows repeated 4 times, one copy after the other, as the lab's union.
    first = train.iloc[:240].reset_index(drop=True)
    for k in range(1, 4):
        assert train.iloc[240 * k : 240 * (k + 1)].reset_index(drop=True).equals(first)


def test_encoding_and_scaling_of_one_row(spark, tmp_path):
    raw = tmp_path / "raw.csv"
    raw.write_text(
        "Island,CulmenLength,CulmenDepth,FlipperLength,BodyMass,Species\n"
        "Torgersen,39.1,18.7,181,3750,0\nDream,,,,,2\nBiscoe,46.1,13.2,211,4500,1\n"
    )
    data = clean(read_raw(spark, raw))
    islands = island_vocabulary(data)
    assert islands == ["Biscoe", "Torgersen"]  # sorted; Dream's only row was incomplete
    rows = encode(data, islands).orderBy("Species").collect()
    # Torgersen is index 1; 181 mm / 10 = 18.1; 3750 g / 100 = 37.5.
    assert [round(v, 4) for v in rows[0]] == [1.0, 39.1, 18.7, 18.1, 37.5, 0]
    assert [round(v, 4) for v in rows[1]] == [0.0, 46.1, 13.2, 21.1, 45.0, 1]


def test_split_depends_on_the_seed_only(spark, tmp_path):
    def test_rows(seed, name):
        lab = Lab(tmp_path / name)
        ingest(str(DATA), lab)
        prepare(spark, lab, oversample_copies=1, seed=seed)
        return pd.read_parquet(lab.test)

    a, b, c = test_rows(0, "a"), test_rows(0, "b"), test_rows(1, "c")
    assert a.equals(b)
    assert not a.equals(c)
    assert len(c) == 102


def test_prepare_without_raw_data_says_to_ingest_first(spark, tmp_path):
    with pytest.raises(PenguinInputError, match=r"raw is not committed .*: run 01_ingest first"):
        prepare(spark, Lab(tmp_path))
    assert not (tmp_path / "prepared").exists()


def lab_with_rows(tmp_path, rows: list[str]) -> Lab:
    """A lab folder whose committed raw data is the shipped file's header and ``rows``."""
    source = tmp_path / "source.csv"
    source.write_text("\n".join([DATA.read_text().splitlines()[0], *rows]) + "\n")
    lab = Lab(tmp_path / "lab")
    ingest(str(source), lab)
    return lab


SHIPPED_ROWS = DATA.read_text().splitlines()[1:]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # Both rows lack measurements: nothing to train on (once a Spark AnalysisException).
        (["Dream,,,,,0", "Biscoe,,,,,1"], "no complete rows: every row has a missing value"),
        # One complete Chinstrap row: round(0.3 * 1) = 0 test rows, so it could never be tested
        # (once a ZeroDivisionError further on).
        (
            [r for r in SHIPPED_ROWS if not r.endswith(",2")] + ["Dream,46.5,17.9,192,3500,2"],
            r"every species in both train and test at test_fraction 0\.3: Chinstrap \(1 rows\)",
        ),
    ],
)
def test_data_without_a_valid_split_is_refused(spark, tmp_path, rows, message):
    lab = lab_with_rows(tmp_path, rows)
    with pytest.raises(PenguinInputError, match=message):
        prepare(spark, lab)
    with pytest.raises(PenguinInputError, match="run 02_prepare first"):
        lab.require("prepared")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("inf"), "column BodyMass: values from 3750.0 to inf"),
        (float("nan"), "column BodyMass: values from 3750.0 to nan"),
        (0.0, "column BodyMass: values from 0.0 to 4500.0"),
    ],
)
def test_measurements_must_be_finite_and_positive(spark, value, message):
    # Ingest refuses such values; prepare checks again what Spark will train on.
    row = ("Dream", 39.1, 18.7, 181.0)
    data = spark.createDataFrame(
        [(*row, 3750.0, 0), (*row, 4500.0, 0), (*row, value, 0)],
        "Island string, CulmenLength float, CulmenDepth float, FlipperLength float, "
        "BodyMass float, Species int",
    )
    with pytest.raises(PenguinInputError, match=message):
        split_sizes(data, 0.3)


def test_a_missing_species_is_a_warning_up_to_the_evaluation(spark, tmp_path):
    lab = lab_with_rows(tmp_path, [r for r in SHIPPED_ROWS if not r.endswith(",2")])
    report = prepare(spark, lab)
    assert report.warnings == ["species Chinstrap has no complete rows"]
    assert "WARNING: species Chinstrap has no complete rows" in report.summary()
    save_initial_model(lab, new_model(lab), seed=0)
    train_stage(lab, epochs=1, log=None)
    evaluation = evaluate_stage(lab, log=lambda *_: None)
    assert read_json(lab.evaluation)["warnings"] == report.warnings == evaluation["warnings"]
    assert evaluation["per_species"]["Chinstrap"]["support"] == 0

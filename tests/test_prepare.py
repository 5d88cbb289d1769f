"""Stage 2: exact row counts, vocabulary, scaling, and a split made before oversampling."""

from __future__ import annotations

import pandas as pd
import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.ingest import ingest
from penguin_classifier.layout import Lab, read_json
from penguin_classifier.prepare import FEATURES, clean, encode, island_vocabulary, prepare, read_raw
from penguin_classifier.runtime import shipped_data

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
        ingest(str(DATA), lab.raw)
        prepare(spark, lab, oversample_copies=1, seed=seed)
        return pd.read_parquet(lab.test)

    a, b, c = test_rows(0, "a"), test_rows(0, "b"), test_rows(1, "c")
    assert a.equals(b)
    assert not a.equals(c)
    assert len(c) == 102


def test_prepare_without_raw_data_says_to_ingest_first(spark, tmp_path):
    with pytest.raises(
        PenguinInputError, match=r"raw/penguins\.csv not found: run 01_ingest first"
    ):
        prepare(spark, Lab(tmp_path))
    assert not (tmp_path / "prepared").exists()

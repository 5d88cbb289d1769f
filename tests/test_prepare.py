"""Stage 2, notebook 02 run as the job runs it: exact row counts, vocabulary, scaling, a split
made before oversampling, refusals in one line, and a learner's change to a cell taking effect."""

from __future__ import annotations

import pandas as pd
import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.features import FEATURES
from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.runtime import project_root, shipped_data

from penguins.cli import main, program
from penguins.runner import run_notebook

DATA = shipped_data()
NOTEBOOK = project_root() / "notebooks" / "02_prepare.py"
HEADER, *SHIPPED_ROWS = DATA.read_text().splitlines()


def penguins_run(capsys, *args: str) -> tuple[int, str, list[str]]:
    """``penguins run ARGS`` in this process: exit status, stdout and stderr's lines."""
    status = main(["run", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


def source_with(tmp_path, rows: list[str]) -> str:
    """A source CSV of the shipped file's header and ``rows``."""
    source = tmp_path / "source.csv"
    source.write_text("\n".join([HEADER, *rows]) + "\n")
    return str(source)


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
    assert (spec["oversample"], spec["test_fraction"], spec["seed"]) == (4, 0.3, 0)
    assert spec["warnings"] == []


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


def test_encoding_and_scaling_of_each_row(spark, tmp_path, capsys):
    rows = ["Torgersen,39.1,18.7,181,3750,0", "Torgersen,39.5,17.4,186,3800,0", "Dream,,,,,2"]
    rows += ["Biscoe,46.1,13.2,211,4500,1", "Biscoe,50,16.3,230,5700,1"]
    lab = Lab(tmp_path / "lab")
    args = ["--only", "ingest,prepare", "--lab-dir", str(lab.root)]
    args += ["--source", source_with(tmp_path, rows), "--param", "test_fraction=0.5"]
    status, out, err = penguins_run(capsys, *args, "--param", "oversample=1")
    assert (status, err) == (0, [])
    spec = read_json(lab.features)
    assert spec["islands"] == ["Biscoe", "Torgersen"]  # sorted; Dream's only row was incomplete
    # floor(2 * 0.5 + 0.5) = 1 of the 2 rows of each species to test, the other to train.
    assert spec["rows"]["per_species"] == {
        "Adelie": {"train": 1, "test": 1},
        "Gentoo": {"train": 1, "test": 1},
    }
    assert "WARNING: species Chinstrap has no complete rows\n" in out
    both = pd.concat([pd.read_parquet(lab.train), pd.read_parquet(lab.test)])
    # Biscoe is index 0, Torgersen 1; e.g. 181 mm / 10 = 18.1 and 3750 g / 100 = 37.5.
    assert sorted(tuple(round(v, 4) for v in row) for row in both.itertuples(index=False)) == [
        (0.0, 46.1, 13.2, 21.1, 45.0, 1),
        (0.0, 50.0, 16.3, 23.0, 57.0, 1),
        (1.0, 39.1, 18.7, 18.1, 37.5, 0),
        (1.0, 39.5, 17.4, 18.6, 38.0, 0),
    ]


def test_the_oversample_parameter_repeats_the_training_rows_only(lab, tmp_lab, capsys):
    status, _, err = penguins_run(
        capsys, "--only", "prepare", "--lab-dir", str(tmp_lab.root), "--param", "oversample=2"
    )
    assert (status, err) == (0, [])
    spec = read_json(tmp_lab.features)
    # 240 training rows, 2 copies; the split is seed 0's, whatever the copies.
    assert len(pd.read_parquet(tmp_lab.train)) == 480 == spec["rows"]["train_oversampled"]
    assert spec["oversample"] == 2
    assert pd.read_parquet(tmp_lab.test).equals(pd.read_parquet(lab.test))


def test_another_seed_gives_another_split_of_the_same_sizes(lab, tmp_lab, capsys):
    status, _, err = penguins_run(
        capsys, "--only", "prepare", "--lab-dir", str(tmp_lab.root), "--seed", "1"
    )
    assert (status, err) == (0, [])
    test = pd.read_parquet(tmp_lab.test)
    assert not test.equals(pd.read_parquet(lab.test))
    assert test["Species"].value_counts().sort_index().tolist() == [45, 37, 20]  # as at seed 0


def test_a_learners_change_to_a_cell_takes_effect(spark, tmp_lab, tmp_path):
    # A copy of the notebook whose oversampling cell makes 2 copies whatever the parameter says.
    line = 'copies = F.explode(F.sequence(F.lit(1), F.lit(oversample_copies))).alias("_copy")'
    text = NOTEBOOK.read_text()
    assert text.count(line) == 1
    changed = tmp_path / "02_prepare_changed.py"
    changed.write_text(text.replace(line, line.replace("F.lit(oversample_copies)", "F.lit(2)")))
    dbutils = run_notebook(changed, {"lab_dir": str(tmp_lab.root)}, spark)
    # 240 training rows x 2, counted from what the cell wrote, not from oversample (4).
    spec = read_json(tmp_lab.features)
    assert (spec["oversample"], spec["rows"]["train_oversampled"]) == (4, 480)
    assert dbutils.jobs.taskValues.values["train_rows"] == 480
    assert len(pd.read_parquet(tmp_lab.train)) == 480
    tmp_lab.require("prepared")  # committed


def test_prepare_without_raw_data_says_to_ingest_first(tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    status, _, err = penguins_run(capsys, "--only", "prepare", "--lab-dir", str(lab.root))
    raw = lab.folder("raw")
    assert (status, err) == (
        2,
        [
            f"penguins run: prepare: {raw} is not committed (no _manifest.json): run: "
            f"{program('penguins')} run --lab-dir {lab.root} --only ingest,prepare"
        ],
    )
    assert not lab.folder("prepared").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # Every row misses a measurement: nothing to train on (once a 40-line AnalysisException
        # from encoding an empty vocabulary).
        (
            ["Dream,39.1,18.7,181,,0", "Biscoe,46.1,,211,4500,1", "Dream,,17.9,192,3500,2"],
            "no complete rows: every row has a missing value",
        ),
        # One complete Chinstrap row: round(0.3 * 1) = 0 test rows, so it could never be tested
        # (once a ZeroDivisionError further on).
        (
            [r for r in SHIPPED_ROWS if not r.endswith(",2")] + ["Dream,46.5,17.9,192,3500,2"],
            "too few complete rows to have every species in both train and test at "
            "test_fraction 0.3: Chinstrap (1 rows)",
        ),
        # A positive float64, which ingest lets through, but 0 as the model's float32.
        (
            SHIPPED_ROWS[:1] + ["Dream,39.1,18.7,181,1e-50,0"],
            "column BodyMass: 1 value(s) are not a positive number up to 3.4e38 (float32) "
            "once cast",
        ),
    ],
)
def test_data_without_a_valid_split_is_one_line(spark, tmp_path, capsys, rows, message):
    # The whole job, as `penguins run --source F.csv --epochs 3` runs it: it stops at prepare.
    lab = Lab(tmp_path / "lab")
    args = ["--source", source_with(tmp_path, rows), "--epochs", "3", "--lab-dir", str(lab.root)]
    status, _, err = penguins_run(capsys, *args)
    assert (status, err) == (2, [f"penguins run: prepare: {message}"])
    lab.require("raw")  # ingest took it; prepare refused it
    with pytest.raises(PenguinInputError, match="run 02_prepare first"):
        lab.require("prepared")


def test_the_refusal_comes_before_any_encoding(spark, tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    source = source_with(tmp_path, ["Dream,39.1,18.7,181,,0"])
    assert (
        penguins_run(capsys, "--only", "ingest", "--lab-dir", str(lab.root), "--source", source)[0]
        == 0
    )
    cells = []
    with pytest.raises(PenguinInputError, match="^no complete rows"):
        run_notebook(NOTEBOOK, {"lab_dir": str(lab.root)}, spark, cells)
    # The cells that ran, the last one the refusal: before the vocabulary, the encoding and the
    # hand-over (which would remove prepared/'s last commit).
    assert [title for title, _ in cells] == [
        "Widgets",
        "Read parameters",
        "Read the raw CSV",
        "Drop incomplete rows, cast the numbers",
        "Refuse data that cannot be split",
    ]


def test_a_missing_species_is_a_warning_up_to_the_evaluation(spark, tmp_path, capsys):
    lab = Lab(tmp_path / "lab")
    source = source_with(tmp_path, [r for r in SHIPPED_ROWS if not r.endswith(",2")])
    args = ["--only", "ingest,prepare,model,train,evaluate", "--lab-dir", str(lab.root)]
    args += ["--source", source, "--epochs", "1"]
    # A registered model of its own: this one must never become the session's champion.
    args += ["--param", "model_name=penguin_classifier_without_chinstrap"]
    status, out, _ = penguins_run(capsys, *args)  # stderr: what MLflow logs
    assert status == 0
    warnings = ["species Chinstrap has no complete rows"]  # no row ends in ",2"
    assert "WARNING: species Chinstrap has no complete rows\n" in out
    assert read_json(lab.features)["warnings"] == warnings
    evaluation = read_json(lab.evaluation)
    assert evaluation["warnings"] == warnings
    assert evaluation["per_species"]["Chinstrap"]["support"] == 0

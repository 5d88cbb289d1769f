"""Batch scoring with Spark: predictions, incomplete rows kept, counts, accuracy, refusals."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.layout import MANIFEST, read_json
from penguin_classifier.runtime import project_root
from penguin_classifier.scoring import score

from penguins.runner import run_notebook

HEADER = "Island,CulmenLength,CulmenDepth,FlipperLength,BodyMass,Species"
ROWS = [
    "Biscoe,46.1,13.2,211,4500,1",  # a typical Gentoo, labelled right
    "Torgersen,39.1,18.7,181,3750,0",  # the data set's first row, an Adelie
    "Dream,49.0,19.5,210,3950,0",  # a Chinstrap labelled Adelie: the one wrong answer
    "Torgersen,,,,,0",  # incomplete, as in the shipped data
    "Dream,45.2,17.8,198,NA,2",  # incomplete: no body mass
]


@pytest.fixture
def model_uri(record):
    """The model the session's job logged (04_train) and registered as champion (05_evaluate)."""
    return record["model_uri"]


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_scoring_writes_predictions_and_counts_incomplete_rows(spark, model_uri, tmp_path):
    source = write_csv(tmp_path / "in.csv", ROWS)
    report = score(spark, source, model_uri, str(tmp_path / "scored"))
    # 5 rows, 2 with a missing measurement; of the 3 labelled and scored, 2 are right.
    assert (report.rows, report.incomplete, report.labelled) == (5, 2, 3)
    assert report.per_species == {"Adelie": 1, "Gentoo": 1, "Chinstrap": 1}
    assert report.accuracy == pytest.approx(2 / 3)
    assert "2 incomplete (not scored)" in report.summary()
    out = pd.read_parquet(tmp_path / "scored" / "predictions.parquet").sort_values("BodyMass")
    assert list(out.columns) == [
        *HEADER.split(","),
        "predicted_species",
        "probability_Adelie",
        "probability_Gentoo",
        "probability_Chinstrap",
    ]
    # Sorted by mass: 3750 Adelie, 3950 Chinstrap, 4500 Gentoo, then the two without a mass.
    assert out["predicted_species"].tolist() == ["Adelie", "Chinstrap", "Gentoo", None, None]
    expected = mlflow.pyfunc.load_model(model_uri).predict(out.iloc[:3][HEADER.split(",")[:5]])
    assert out.iloc[:3]["probability_Gentoo"].tolist() == pytest.approx(
        expected["probability_Gentoo"].tolist()
    )
    assert out["probability_Adelie"].isna().tolist() == [False, False, False, True, True]
    committed = read_json(tmp_path / "scored" / MANIFEST)
    assert committed["stage"] == "07_score"
    assert read_json(tmp_path / "scored" / "summary.json")["accuracy"] == pytest.approx(2 / 3)


def test_a_table_without_labels_has_no_accuracy(spark, model_uri, tmp_path):
    rows = [r.rsplit(",", 1)[0].split(",") for r in ROWS[:2]]
    columns = HEADER.split(",")[:5]
    spark.createDataFrame(pd.DataFrame(rows, columns=columns)).createOrReplaceTempView("new_birds")
    report = score(spark, "new_birds", model_uri, str(tmp_path / "scored"))
    assert (report.rows, report.incomplete, report.accuracy) == (2, 0, None)
    assert report.per_species == {"Adelie": 1, "Gentoo": 1, "Chinstrap": 0}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "Anvers,46.1,13.2,211,4500,1",
            r"in.csv: 1 row cannot be scored, e.g. island 'Anvers' is not in",
        ),
        ("Biscoe,46.1,13.2,211,heavy,1", r"e.g. BodyMass 'heavy' is not a positive number"),
        (
            "Biscoe,46.1,-13.2,211,4500,1",
            r"e.g. CulmenDepth '-13.2' is not a positive number",
        ),
        # Finite as a double, inf as the model's float32: it was scored Adelie, NaN probabilities.
        (
            "Biscoe,46.1,13.2,211,1e39,1",
            r"e.g. BodyMass '1e39' is not a positive number up to 3\.4e38 \(float32\)$",
        ),
        ("Biscoe,46.1,13.2,211,4500,7", r"e.g. Species '7' is not 0 to 2$"),
    ],
)
def test_values_the_model_cannot_take_stop_before_scoring(spark, model_uri, tmp_path, row, message):
    source = write_csv(tmp_path / "in.csv", [*ROWS, row])
    with pytest.raises(PenguinInputError, match=message):
        score(spark, source, model_uri, str(tmp_path / "scored"))
    assert not (tmp_path / "scored").exists()


def test_missing_input_column_model_or_file_is_one_line(spark, model_uri, tmp_path):
    source = write_csv(tmp_path / "in.csv", ["Biscoe,46.1,13.2,211"], HEADER.rsplit(",", 2)[0])
    with pytest.raises(PenguinInputError, match=r"missing columns \['BodyMass'\]"):
        score(spark, source, model_uri, str(tmp_path / "scored"))
    with pytest.raises(PenguinInputError, match=f"input {tmp_path}/none.csv not found"):
        score(spark, str(tmp_path / "none.csv"), model_uri, str(tmp_path / "scored"))
    with pytest.raises(PenguinInputError, match="^model models:/no_such_model@champion: "):
        score(spark, source, "models:/no_such_model@champion", str(tmp_path / "scored"))


def test_the_notebook_scores_the_lab_data_with_the_champion(spark, model_uri, tmp_lab):
    # Defaults: the lab's raw CSV, models:/penguin_classifier@champion, <lab_dir>/scored.
    notebook = project_root() / "notebooks" / "07_score.py"
    dbutils = run_notebook(notebook, {"lab_dir": str(tmp_lab.root)}, spark)
    values = dbutils.jobs.taskValues.values
    # The shipped data: 344 rows, 2 without measurements; all labelled.
    assert values["scored_rows"] == 342
    assert values["scoring_accuracy"] >= 0.97
    assert read_json(tmp_lab.folder("scored") / MANIFEST)["parameters"] == {
        "input": str(tmp_lab.raw),
        "model": "models:/penguin_classifier@champion",
    }

"""Batch scoring, notebook 07 run as the job runs it (``penguins run --job penguin_scoring``):
predictions, incomplete rows kept, counts, accuracy, and the refusals, one line each."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.records import MANIFEST
from penguin_classifier.runtime import project_root

from penguins.cli import main
from penguins.jobs import local_tasks
from penguins.runner import notebook_cells, run_tasks

ROOT = project_root()
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
    """The version the session's job registered as champion (05_evaluate). Other tests register
    versions of their own, and one may be champion by now: a test comparing answers names it."""
    return f"models:/{record['registered_model']}/{record['version']}"


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def score(lab: Lab, source: str, output: Path, *params: str) -> list[str]:
    """``penguins run`` of the scoring job on ``source``, into ``output``."""
    args = ["run", "--job", "penguin_scoring", "--lab-dir", str(lab.root)]
    args += ["--param", f"input={source}", "--param", f"output={output}"]
    return args + [x for p in params for x in ("--param", p)]


def refused(capsys, args: list[str]) -> str:
    """Run ``penguins ARGS``; assert exit 2 and one line on stderr; return it, newline off."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


def test_scoring_writes_predictions_and_counts_incomplete_rows(
    model_uri, tmp_lab, tmp_path, capsys
):
    source = write_csv(tmp_path / "in.csv", ROWS)
    assert main(score(tmp_lab, source, tmp_path / "scored", f"model={model_uri}")) == 0
    out = capsys.readouterr().out
    # 5 rows, 2 with a missing measurement; of the 3 labelled and scored, 2 are right.
    assert "5 rows: 3 scored (Adelie 1, Gentoo 1, Chinstrap 1), 2 incomplete (not scored)" in out
    assert "accuracy 0.6667 on 3 labelled rows" in out
    predictions = tmp_path / "scored" / "predictions.parquet"
    assert read_json(tmp_path / "scored" / "summary.json") == {
        "rows": 5,
        "incomplete": 2,
        "per_species": {"Adelie": 1, "Gentoo": 1, "Chinstrap": 1},
        "labelled": 3,
        "accuracy": pytest.approx(2 / 3),
        "includes_training_rows": False,  # not the lab's CSV
        "output": str(predictions),
    }
    table = pd.read_parquet(predictions).sort_values("BodyMass")
    assert list(table.columns) == [
        *HEADER.split(","),
        "predicted_species",
        "probability_Adelie",
        "probability_Gentoo",
        "probability_Chinstrap",
    ]
    # Sorted by mass: 3750 Adelie, 3950 Chinstrap, 4500 Gentoo, then the two without a mass.
    assert table["predicted_species"].tolist() == ["Adelie", "Chinstrap", "Gentoo", None, None]
    expected = mlflow.pyfunc.load_model(model_uri).predict(table.iloc[:3][HEADER.split(",")[:5]])
    assert table.iloc[:3]["probability_Gentoo"].tolist() == pytest.approx(
        expected["probability_Gentoo"].tolist()
    )
    assert table["probability_Adelie"].isna().tolist() == [False, False, False, True, True]
    assert read_json(tmp_path / "scored" / MANIFEST)["stage"] == "07_score"


@pytest.mark.parametrize("labels", ["no Species column (a table)", "Species all NA (a CSV)"])
def test_without_labels_there_is_no_accuracy(spark, tmp_lab, tmp_path, capsys, labels):
    two = [r.rsplit(",", 1)[0] for r in ROWS[:2]]  # the Gentoo and the Adelie, label cut off
    if labels.startswith("no"):
        frame = pd.DataFrame([r.split(",") for r in two], columns=HEADER.split(",")[:5])
        spark.createDataFrame(frame).createOrReplaceTempView("new_birds")
        source = "new_birds"
    else:
        source = write_csv(tmp_path / "in.csv", [f"{r},NA" for r in two])
    assert main(score(tmp_lab, source, tmp_path / "scored")) == 0
    summary = read_json(tmp_path / "scored" / "summary.json")
    # Both complete, so both scored; no label to check them against, so no accuracy.
    assert (summary["rows"], summary["incomplete"], summary["labelled"]) == (2, 0, 0)
    assert summary["accuracy"] is None
    assert summary["per_species"] == {"Adelie": 1, "Gentoo": 1, "Chinstrap": 0}
    printed = capsys.readouterr().out.splitlines()
    assert not [line for line in printed if line.startswith("accuracy ")]  # no accuracy line


def test_accuracy_counts_only_the_labelled_rows(tmp_lab, tmp_path):
    # The Gentoo labelled right, and the Chinstrap of ROWS without a label: both scored, one
    # labelled. (For a null label Spark 4.3 names the last species, Chinstrap, unless guarded:
    # then 2 rows would count as labelled, both right.)
    source = write_csv(tmp_path / "in.csv", [ROWS[0], "Dream,49.0,19.5,210,3950,NA"])
    assert main(score(tmp_lab, source, tmp_path / "scored")) == 0
    summary = read_json(tmp_path / "scored" / "summary.json")
    assert summary["per_species"] == {"Adelie": 0, "Gentoo": 1, "Chinstrap": 1}
    assert (summary["rows"], summary["labelled"], summary["accuracy"]) == (2, 1, 1.0)


ISLANDS = "['Biscoe', 'Dream', 'Torgersen']"  # the saved vocabulary, sorted
POSITIVE = "is not a positive number up to 3.4e38 (float32)"  # features.MEASUREMENT


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "Anvers,46.1,13.2,211,4500,1",
            f"island 'Anvers' is not in the saved vocabulary {ISLANDS}",
        ),
        ("Biscoe,46.1,13.2,211,heavy,1", f"BodyMass 'heavy' {POSITIVE}"),
        ("Biscoe,46.1,-13.2,211,4500,1", f"CulmenDepth '-13.2' {POSITIVE}"),
        # Finite as a double, inf as the model's float32: it was scored Adelie, NaN probabilities.
        ("Biscoe,46.1,13.2,211,1e39,1", f"BodyMass '1e39' {POSITIVE}"),
        ("Biscoe,46.1,13.2,211,4500,7", "Species '7' is not 0 to 2"),  # 3 species: labels 0-2
    ],
)
def test_values_the_model_cannot_take_stop_before_scoring(tmp_lab, tmp_path, capsys, row, problem):
    source = write_csv(tmp_path / "in.csv", [*ROWS, row])
    assert refused(capsys, score(tmp_lab, source, tmp_path / "scored")) == (
        # The sixth row of the file (record 6, as serving counts): after the 5 of ROWS.
        f"penguins run: score: input {source}: 1 row cannot be scored; record 6, {problem}"
    )
    assert not (tmp_path / "scored").exists()  # refused before the output was touched


def test_a_missing_column_file_or_model_is_one_line(tmp_lab, tmp_path, capsys):
    source = write_csv(tmp_path / "in.csv", ["Biscoe,46.1,13.2,211"], HEADER.rsplit(",", 2)[0])
    expected = f"input {source}: missing columns ['BodyMass']; expected ['Island', 'CulmenLength', "
    expected += "'CulmenDepth', 'FlipperLength', 'BodyMass']"
    err = refused(capsys, score(tmp_lab, source, tmp_path / "scored"))
    assert err == f"penguins run: score: {expected}"
    none = tmp_path / "none.csv"
    err = refused(capsys, score(tmp_lab, str(none), tmp_path / "scored"))
    assert err == f"penguins run: score: input {none} not found"
    model = "models:/no_such_model@champion"
    err = refused(capsys, score(tmp_lab, source, tmp_path / "scored", f"model={model}"))
    assert err.startswith(f"penguins run: score: model {model}: ")  # then MLflow's reason
    assert not (tmp_path / "scored").exists()


def test_the_job_scores_the_lab_data_with_the_champion(spark, tmp_lab):
    # Defaults: the lab's raw CSV, models:/penguin_classifier@champion, <lab_dir>/scored.
    tasks = local_tasks(job="penguin_scoring")
    (result,) = run_tasks(tasks, {"lab_dir": str(tmp_lab.root)}, spark, log=lambda *_: None)
    # The shipped data: 344 rows, 2 without measurements; all labelled.
    assert result.task_values["scored_rows"] == 342
    assert result.task_values["scoring_accuracy"] >= 0.97
    summary = read_json(tmp_lab.folder("scored") / "summary.json")
    assert (summary["rows"], summary["incomplete"], summary["labelled"]) == (344, 2, 342)
    assert read_json(tmp_lab.folder("scored") / MANIFEST)["parameters"] == {
        "input": str(tmp_lab.raw),
        "model": "models:/penguin_classifier@champion",
    }
    assert [title for title, _ in result.cells] == [
        "Widgets",
        "Read parameters",
        "Point MLflow at the registry",
        "Load the model from the registry",
        "Read the penguins: a CSV file with a header, or a table",
        "Check every value before scoring",
        "The model as a Spark function",
        "Score the complete rows, keep the others",
        "What to count while writing",
        "Write the predictions (the output folder is replaced only now)",
        "Count the predictions per species",
        "Accuracy on the labelled rows",
        "Commit",
    ]


def test_the_scoring_benchmark_runs_the_job_cell_by_cell(record):
    from penguins.bench import calling_cell
    from penguins.bench_scoring import READS_ROWS, bench_scoring_job

    # One run in a fresh process, on 400 rows: the shipped data's 342 complete rows, then 58 again.
    result = bench_scoring_job(400, "lab", record["model_uri"], repeat=1)
    assert result["scored_rows"] == 400
    notebook = notebook_cells(ROOT / "notebooks" / "07_score.py")
    titles = [c.title for c in notebook]
    assert [t for t, _ in result["cells_s"]] == [t for t, _ in result["again_cells_s"]] == titles
    # The work: from the cell that reads the rows on (0 < reads: the widgets come first).
    reads = calling_cell(ROOT / "notebooks" / "07_score.py", READS_ROWS)
    assert 0 < reads < len(notebook)
    work = sum(s for _, s in result["again_cells_s"][reads:])
    assert result["again_work_s"] == pytest.approx(work, abs=0.01 * len(notebook))
    assert result["wall_s"] > result["spark_start_s"] + result["job_s"] - 0.01 * len(notebook)


def test_the_spark_function_answers_as_the_registered_pyfunc(spark, model_uri):
    # Notebook 07's pandas UDF classifies in Spark's Python workers without MLflow: the same
    # species and probabilities as the pyfunc's own predict, row for row.
    from penguin_classifier.features import INPUTS, MEASUREMENTS
    from penguin_classifier.registry import load_pyfunc
    from penguin_classifier.runtime import shipped_data
    from penguin_classifier.scoring import model_udf

    model, _ = load_pyfunc(model_uri)
    frame = pd.read_csv(shipped_data()).dropna()[INPUTS].astype(dict.fromkeys(MEASUREMENTS, float))
    expected = model.predict(frame)
    rows = spark.createDataFrame(frame)  # in order, in partitions of local[2]'s two cores
    assert rows.rdd.getNumPartitions() == 2  # two tasks, each with its copy of the model
    answer = rows.select(model_udf(model)(*INPUTS).alias("out")).select("out.*").toPandas()
    assert answer["species"].tolist() == expected["species"].tolist()
    assert set(expected["species"]) == {"Adelie", "Gentoo", "Chinstrap"}
    # float32 arithmetic on other batch shapes: the same to about 1e-7
    pd.testing.assert_frame_equal(answer, expected, check_exact=False, rtol=0, atol=1e-6)

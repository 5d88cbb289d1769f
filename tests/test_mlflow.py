"""MLflow: where runs go, what the stages log, the pyfunc model's round trip, the champion rule.

Every test folder follows a volume's rules, and SQLite needs random writes: the tracking store
lives in a temporary folder outside them, passed as MLFLOW_TRACKING_URI (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from penguin_classifier import registry, tracking
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.features import INPUTS
from penguin_classifier.jsonfile import read_json
from penguin_classifier.lab import Lab
from penguin_classifier.model import load_model
from penguin_classifier.predict import Penguin, classify, predict
from penguin_classifier.runtime import project_root

from penguins.cli import main
from penguins.runner import run_notebook

NOTEBOOKS = project_root() / "notebooks"
PACKAGE = NOTEBOOKS / "penguin_classifier"
PENGUINS = [
    Penguin("Biscoe", 46.1, 13.2, 211.0, 4500.0),  # a typical Gentoo
    Penguin("Torgersen", 39.1, 18.7, 181.0, 3750.0),  # the data set's first row, an Adelie
    Penguin("Dream", 50.4, 15.3, 200.0, 5000.0),  # the lab's new penguin
    Penguin("Dream", 49.0, 19.5, 210.0, 3950.0),  # a Chinstrap
]


def test_the_local_store_is_next_to_the_lab_folder_not_inside(tmp_path, monkeypatch):
    # SQLite inside a Unity Catalog volume would need random writes and in-place updates.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(name, raising=False)
    lab = Lab(tmp_path / "work" / "lab")
    database = f"sqlite:///{tmp_path / 'work' / 'mlruns' / 'mlflow.db'}"
    assert tracking.locations(lab) == (database, database)


def test_mlflow_tracking_uri_wins_and_databricks_uses_unity_catalog(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.locations(Lab(tmp_path)) == ("http://127.0.0.1:5000",) * 2
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert tracking.locations(Lab(tmp_path)) == ("databricks", "databricks-uc")
    with pytest.raises(PenguinInputError, match="on Databricks an experiment is a workspace path"):
        tracking.configure(Lab(tmp_path), "penguin_classifier")


def test_on_databricks_the_registry_is_unity_catalog_whatever_the_tracking_uri(
    tmp_path, monkeypatch
):
    # MLflow 2.21+ exports MLFLOW_TRACKING_URI=databricks once set_tracking_uri has run, so a
    # notebook's second run in a session finds it: its registry must stay Unity Catalog's.
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert tracking.locations(Lab(tmp_path)) == ("databricks", "databricks-uc")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "databricks-uc://my-profile")
    assert tracking.locations(Lab(tmp_path)) == ("databricks", "databricks-uc://my-profile")


def test_the_default_experiment_is_the_notebooks_own_on_databricks(tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(name, raising=False)
    local = tracking.configure(Lab(tmp_path / "lab"), "")
    assert local.experiment == "penguin_classifier"
    assert mlflow.get_experiment_by_name("penguin_classifier").artifact_location == (
        (tmp_path / "mlruns" / "artifacts").as_uri()  # beside the store, not ./mlruns
    )
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # MLflow 3 sets them
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    try:  # no experiment set: MLflow's default, the notebook's experiment on Databricks
        where = tracking.configure(Lab(tmp_path), "")
        assert where == tracking.Tracking("databricks", "databricks-uc", "")
    finally:
        mlflow.set_tracking_uri(None)  # back to the session's store (MLFLOW_TRACKING_URI)
        mlflow.set_registry_uri(None)


def test_the_training_run_has_parameters_per_epoch_metrics_and_the_spec(record, lab):
    run = mlflow.get_run(record["train_run_id"])
    # The stage's own parameters, then 02_prepare's and 03_model's at the job's defaults.
    assert run.data.params == {
        **{"epochs": "100", "lr": "0.001", "batch_size": "20", "device": "auto"},
        "optimizer": "adam",
        **{"oversample": "4", "test_fraction": "0.3", "split_seed": "0"},
        **{"hidden": "10", "init_seed": "0"},
    }
    history = read_json(lab.history)["history"]
    curve = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    # One value per epoch, at step = epoch, as in history.json.
    assert [(m.step, m.value) for m in sorted(curve, key=lambda m: m.step)] == [
        (h["epoch"], pytest.approx(h["val_loss"])) for h in history
    ]
    assert run.data.metrics["val_accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    names = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert "features.json" in names


def test_the_runs_of_one_job_run_are_found_by_its_tag(record):
    assert record["job_run_id"].startswith("local-")  # no {{job.run_id}} outside Databricks
    found = mlflow.search_runs(
        experiment_names=[record["experiment"]],
        filter_string=f"tags.job_run_id = '{record['job_run_id']}'",
    )
    assert sorted(found["tags.mlflow.runName"]) == ["04_train", "06_distribute"]
    assert set(found["run_id"]) == {record["train_run_id"], record["distribute_run_id"]}


def test_the_distributed_run_has_its_own_parameters_metrics_and_model(record, lab):
    run = mlflow.get_run(record["distribute_run_id"])
    summary = read_json(lab.distributed_metrics)
    assert run.data.params["num_processes"] == "2"
    assert run.data.params["backend"] == summary["backend"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["accuracy"])
    model = mlflow.pyfunc.load_model(record["distributed_model_uri"])
    assert model.predict(PENGUINS[0].frame())["species"].tolist() == ["Gentoo"]


def test_the_pyfunc_model_predicts_raw_rows_as_classify_does(record, lab):
    model = mlflow.pyfunc.load_model(record["model_uri"])
    frame = pd.concat([p.frame() for p in PENGUINS], ignore_index=True)
    predictions = model.predict(frame)
    net, spec = load_model(lab.model_config, lab.weights), read_json(lab.features)
    for penguin, (_, row) in zip(PENGUINS, predictions.iterrows(), strict=True):
        species, probabilities = classify(net, penguin, spec)
        assert row["species"] == species
        # Same figures; float32 sums over a batch of 4 may differ in the last bits from 1 row.
        got = {s: row[f"probability_{s}"] for s in spec["species"]}
        assert got == pytest.approx(probabilities, rel=1e-5, abs=1e-9)
    assert predictions["species"].tolist() == ["Gentoo", "Adelie", "Gentoo", "Chinstrap"]


def test_the_model_carries_its_signature_example_and_files(record):
    info = mlflow.models.get_model_info(record["model_uri"])
    assert info.signature.inputs.input_names() == INPUTS
    assert info.signature.outputs.input_names() == [
        "species",
        "probability_Adelie",
        "probability_Gentoo",
        "probability_Chinstrap",
    ]
    local = Path(mlflow.artifacts.download_artifacts(record["model_uri"]))
    names = {p.name for p in (local / "artifacts").iterdir()}
    assert names == {
        "features.json",
        "config.json",
        "network.pt",  # 03's network as TorchScript
        "penguin_classifier.pt",  # 04's weights
        "penguin_classifier",  # the package's code, as it was when the model was logged
    }
    code = local / "artifacts" / "penguin_classifier"
    assert (code / "predict.py").read_text() == (PACKAGE / "predict.py").read_text()
    assert not list(code.rglob("__pycache__"))  # sources only
    assert mlflow.models.Model.load(str(local)).load_input_example(str(local)).shape == (2, 5)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"Island": "Anvers"}, r"^record 2, island 'Anvers' is not in the saved vocabulary \["),
        ({"CulmenLength": float("nan")}, r"^record 2, CulmenLength: nan is not a positive number"),
        ({"BodyMass": -3750.0}, r"^record 2, BodyMass: -3750.0 is not a positive number"),
        ({"FlipperLength": float("inf")}, r"^record 2, FlipperLength: inf is not a positive"),
        # Finite as a Python float, inf as the model's float32: it answered NaN probabilities.
        (
            {"BodyMass": 1e300},
            r"^record 2, BodyMass: 1e\+300 is not a positive number up to 3\.4e38 \(float32\)$",
        ),
    ],
)
def test_the_model_refuses_what_it_cannot_take_naming_row_and_column(record, row, message):
    model = mlflow.pyfunc.load_model(record["model_uri"])
    frame = pd.concat([PENGUINS[0].frame(), PENGUINS[1].frame()], ignore_index=True)
    for column, value in row.items():
        frame.loc[1, column] = value
    # MLflow's bad-input error: a scoring server answers 400 with this message.
    with pytest.raises(MlflowException, match=message) as refused:
        model.predict(frame)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_penguins_predict_says_what_the_model_refuses_in_one_line(record, capsys):
    args = ["predict", "--island", "Anvers", "--culmen-length", "39.1", "--culmen-depth", "18.7"]
    args += ["--flipper-length", "181", "--body-mass", "3750", "--model-uri", record["model_uri"]]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "penguins predict: island 'Anvers' is not in the saved vocabulary "
        "['Biscoe', 'Dream', 'Torgersen']\n"
    )


def test_evaluation_is_logged_into_the_training_run_and_the_model_registered(record, lab):
    run = mlflow.get_run(record["train_run_id"])
    evaluation = read_json(lab.evaluation)
    assert run.data.metrics["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    recall = evaluation["per_species"]["Chinstrap"]["recall"]
    assert run.data.metrics["test_recall_Chinstrap"] == pytest.approx(recall)
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")}
    assert names == {
        "evaluation/evaluation.json",
        "evaluation/loss.png",
        "evaluation/confusion_matrix.png",
    }
    # Held-out accuracy 0.98 >= 0.97: the new version is the champion.
    assert (record["registered_model"], record["alias"]) == ("penguin_classifier", "champion")
    champion = mlflow.MlflowClient().get_model_version_by_alias("penguin_classifier", "champion")
    assert str(champion.version) == record["version"]
    # 04's store, experiment, run and model, 05's registration, 06's run and model: joined.
    assert set(record) == {
        *("tracking_uri", "registry_uri", "experiment", "job_run_id", "train_run_id", "model_uri"),
        *("registered_model", "version", "alias", "distribute_run_id", "distributed_model_uri"),
    }
    assert None not in record.values()


def test_champion_only_at_or_above_the_minimum_accuracy(record):
    model_uri = record["model_uri"]
    name = "penguin_classifier_alias_test"
    client = mlflow.MlflowClient()
    low = registry.register(model_uri, 0.96, name)
    # Version 1 at 0.96 < 0.97: registered, no alias anywhere.
    assert (low.version, low.champion) == ("1", False)
    assert "NOT champion: held-out accuracy 0.9600 is below 0.97; no version" in low.summary()
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(name, "champion")
    good = registry.register(model_uri, 0.97, name)  # exactly the minimum is enough
    assert (good.version, good.champion) == ("2", True)
    worse = registry.register(model_uri, 0.5, name)
    assert "champion stays on version 2" in worse.summary()
    # MLflow's version numbers are strings or ints depending on version and store.
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert model.predict(PENGUINS[0].frame())["species"].tolist() == ["Gentoo"]


def test_a_logged_model_answers_as_the_lab_folder_does(record, lab):
    # What penguins predict --model-uri prints, against penguins predict --lab-dir.
    expected_species, expected = predict(lab, PENGUINS[3])
    species, probabilities = registry.classify_with(record["model_uri"], PENGUINS[3])
    assert species == expected_species
    assert probabilities == pytest.approx(expected)
    with pytest.raises(PenguinInputError, match="^model models:/nobody@champion: "):
        registry.classify_with("models:/nobody@champion", PENGUINS[3])


def test_unity_catalog_needs_a_three_part_name(record):
    mlflow.set_registry_uri("databricks-uc")
    try:
        with pytest.raises(PenguinInputError, match=r"needs <catalog>\.<schema>\.penguin_classif"):
            registry.register(record["model_uri"], 0.99, "penguin_classifier")
    finally:
        mlflow.set_registry_uri(record["registry_uri"])


def test_below_min_accuracy_the_version_is_registered_but_not_champion(record, tmp_lab, spark):
    dbutils = run_notebook(
        NOTEBOOKS / "05_evaluate.py", {"lab_dir": str(tmp_lab.root), "min_accuracy": "1.0"}, spark
    )
    again = tracking.recorded(tmp_lab)
    assert int(again["version"]) > int(record["version"]) and again["alias"] is None
    assert dbutils.jobs.taskValues.values["model_version"] == again["version"]
    client = mlflow.MlflowClient()
    assert (
        str(client.get_model_version_by_alias("penguin_classifier", "champion").version)
        == (record["version"])
    )


def test_a_new_training_run_drops_the_old_registration_from_the_record(record, tmp_lab, spark):
    run_notebook(NOTEBOOKS / "04_train.py", {"lab_dir": str(tmp_lab.root), "epochs": "2"}, spark)
    again = tracking.recorded(tmp_lab)
    assert again["train_run_id"] != record["train_run_id"]
    # 05 and 06 have not run for this model: what they recorded is not carried over.
    assert again == read_json(tmp_lab.folder("trained") / "mlflow.json")


# What a working tree changed after a model was logged looks like to that model: its network
# loader and its encoding both fail.
CHANGED_TREE = {
    "model.py": "\n\ndef load_model(config_path, weights_path):\n    raise RuntimeError('tree')\n",
    "predict.py": "\n\ndef classify_frame(model, frame, spec):\n    raise RuntimeError('tree')\n",
}


def test_a_model_version_runs_the_code_it_was_logged_with_whatever_the_tree_holds(
    record, lab, tmp_path, monkeypatch
):
    version = registry.register(record["model_uri"], 1.0, "penguin_classifier_own_code").version
    uri = f"models:/penguin_classifier_own_code/{version}"
    expected_species, expected = registry.classify_with(uri, PENGUINS[3])

    # A new process whose penguin_classifier is a changed copy of the package (first on
    # PYTHONPATH, before the editable install): penguins predict loads the version all the same.
    tree = tmp_path / "tree"
    (tree / "penguin_classifier").mkdir(parents=True)
    for module in PACKAGE.glob("*.py"):
        changed = module.read_text() + CHANGED_TREE.get(module.name, "")
        (tree / "penguin_classifier" / module.name).write_text(changed)
    path = os.pathsep.join(p for p in [str(tree), os.environ.get("PYTHONPATH")] if p)
    penguin = PENGUINS[3]
    asked = subprocess.run(
        [Path(sys.executable).with_name("penguins"), "predict", "--model-uri", uri, "--json"]
        + ["--lab-dir", str(lab.root)]
        + ["--island", penguin.island, "--culmen-length", str(penguin.culmen_length)]
        + ["--culmen-depth", str(penguin.culmen_depth)]
        + ["--flipper-length", str(penguin.flipper_length), "--body-mass", str(penguin.body_mass)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["species"] == expected_species == "Chinstrap"
    assert answer["probabilities"] == pytest.approx(expected, rel=1e-6)

    # In this process, the tree's functions changed the same way.
    def changed(*args):
        raise RuntimeError("the working tree's code ran")

    monkeypatch.setattr("penguin_classifier.model.load_model", changed)
    monkeypatch.setattr("penguin_classifier.predict.classify_frame", changed)
    model = mlflow.pyfunc.load_model(uri)
    row = model.predict(penguin.frame()).iloc[0]
    assert row["species"] == expected_species
    classifier = model.unwrap_python_model()
    assert classifier.classify_frame.__module__.startswith("penguin_model_")  # its own copy

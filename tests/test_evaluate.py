"""Stage 5, notebook 05 as the job runs it: exact metrics, the saved outputs, refused penguins;
and predict's encoding of raw measurements."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest
import torch
from penguin_classifier import tracking
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.evaluate import evaluate_weights
from penguin_classifier.handover import Handover
from penguin_classifier.jsonfile import read_json, write_json
from penguin_classifier.model import load_model
from penguin_classifier.predict import Penguin, encode, encode_frame, predict
from penguin_classifier.runtime import project_root

from penguins.cli import main
from penguins.runner import run_notebook

NOTEBOOK = project_root() / "notebooks" / "05_evaluate.py"
SPECIES = ["Adelie", "Gentoo", "Chinstrap"]


def always_adelie(lab) -> dict:
    """Weights of ``lab``'s network that answer Adelie 0.5, Gentoo 0.25, Chinstrap 0.25 for every
    penguin: every weight 0, the last layer's biases ln 2, 0, 0 (log_softmax: ln 2 - ln 4, -ln 4,
    -ln 4)."""
    model = load_model(lab.model_config, lab.initial_weights)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.program.fc3.bias.copy_(torch.tensor([math.log(2), 0.0, 0.0]))
    return model.state_dict()


def commit_trained(lab, state: dict) -> None:
    """Commit ``trained/`` again, as 04 does, with these weights, 04's history, and a new MLflow
    run for 05 to log into (the session's 04 run keeps its own figures)."""
    history = read_json(lab.history)
    record = tracking.reopen(lab, "trained")
    with mlflow.start_run(run_name="always_adelie") as run:
        pass
    inputs = lab.require("prepared", "model")
    handover = Handover(lab.folder("trained"), "04_train", {"epochs": 100}, inputs)
    torch.save(state, handover.local / lab.weights.name)
    write_json(handover.local / lab.history.name, history)
    write_json(handover.local / tracking.MLFLOW_JSON, {**record, "train_run_id": run.info.run_id})
    handover.commit()


def test_held_out_metrics_are_exact(tmp_lab, spark):
    commit_trained(tmp_lab, always_adelie(tmp_lab))
    widgets = {"lab_dir": str(tmp_lab.root), "model_name": "always_adelie"}
    run_notebook(NOTEBOOK, widgets, spark)
    evaluation = read_json(tmp_lab.evaluation)
    # The held-out rows: Adelie 151 → 45, Gentoo 123 → 37, Chinstrap 68 → 20 (30 % each, 102).
    # Every one is taken for an Adelie: rows are actual, columns predicted.
    assert evaluation["confusion_matrix"] == [[45, 0, 0], [37, 0, 0], [20, 0, 0]]
    assert evaluation["accuracy"] == 45 / 102
    # -ln 0.5 for each Adelie, -ln 0.25 = 2 ln 2 for the 57 others: (45 + 114) ln 2 / 102.
    assert evaluation["loss"] == pytest.approx(159 * math.log(2) / 102, rel=1e-6)
    # F1 is the harmonic mean: 2 · (45/102) · 1 / (45/102 + 1) = 90/147. A species never
    # predicted has precision 0 (zero_division=0), not NaN.
    assert evaluation["per_species"] == {
        "Adelie": {
            "precision": 45 / 102,
            "recall": 1.0,
            "f1": pytest.approx(90 / 147),
            "support": 45,
        },
        "Gentoo": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 37},
        "Chinstrap": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 20},
    }
    new = evaluation["new_penguin"]
    assert (new["input"], new["species"]) == ("Dream,50.4,15.3,200,5000", "Adelie")
    assert new["probabilities"] == pytest.approx({"Adelie": 0.5, "Gentoo": 0.25, "Chinstrap": 0.25})
    # 06 compares its model with 05's figure through evaluate_weights: the same numbers.
    assert evaluate_weights(tmp_lab, tmp_lab.weights) == {
        "rows": 102,
        "loss": evaluation["loss"],
        "accuracy": evaluation["accuracy"],
    }
    # 45/102 is below min_accuracy 0.97: registered, but not champion.
    registration = read_json(tmp_lab.folder("evaluation") / tracking.MLFLOW_JSON)
    assert (registration["registered_model"], registration["alias"]) == ("always_adelie", None)


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (
            "new_penguin=Dream,50.4",
            "new penguin 'Dream,50.4': expected island,culmen_length,culmen_depth,"
            "flipper_length,body_mass",
        ),
        ("new_penguin=Dream,50.4,15.3,long,5000", "flipper_length: 'long' is not a number"),
        (
            "new_penguin=Anvers,50,15,200,5000",
            "island 'Anvers' is not in the saved vocabulary ['Biscoe', 'Dream', 'Torgersen']",
        ),
        # Finite as a Python float, inf as the model's float32 (and NaN probabilities).
        (
            "new_penguin=Dream,50,15,200,1e39",
            "BodyMass: 1e+39 is not a positive number up to 3.4e38 (float32)",
        ),
        # Fits in float32, but CulmenDepth × its weights does not: inf, then NaN.
        (
            "new_penguin=Dream,50,3.4e38,200,5000",
            "the model's probabilities are NaN: these values overflow its float32 arithmetic, "
            "or its weights are not numbers",
        ),
        ("min_accuracy=nan", "parameter min_accuracy: nan is not a finite number above 0.0"),
    ],
)
def test_refused_before_anything_is_saved(tmp_lab, capsys, param, message):
    record = tmp_lab.folder("evaluation") / "_manifest.json"
    before = record.read_bytes()
    args = ["run", "--only", "evaluate", "--lab-dir", str(tmp_lab.root), "--param", param]
    assert main(args) == 2
    assert capsys.readouterr().err == f"penguins run: evaluate: {message}\n"
    # evaluation/ still holds its earlier commit: the hand-over was never opened.
    assert record.read_bytes() == before
    tmp_lab.require("evaluation")


def test_evaluation_outputs_on_the_shipped_data(lab):
    evaluation = read_json(lab.evaluation)
    # The held-out figure the project promises at the default parameters.
    assert evaluation["accuracy"] >= 0.97
    assert evaluation["rows"] == 102
    assert sum(map(sum, evaluation["confusion_matrix"])) == 102
    assert evaluation["new_penguin"]["species"] in SPECIES
    assert sum(evaluation["new_penguin"]["probabilities"].values()) == pytest.approx(1.0)
    assert lab.loss_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lab.confusion_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_reloads_the_saved_weights(lab):
    species, probabilities = predict(lab, Penguin("Biscoe", 46.1, 13.2, 211, 4500))
    assert species == "Gentoo"  # a typical Gentoo: long flippers, shallow bill, heavy
    assert probabilities["Gentoo"] > 0.9
    species, _ = predict(lab, Penguin("Torgersen", 39.1, 18.7, 181, 3750))
    assert species == "Adelie"  # the first row of the data set


SPEC = {
    "features": ["IslandIdx", "CulmenLength", "CulmenDepth", "FlipperScaled", "MassScaled"],
    "islands": ["Biscoe", "Dream", "Torgersen"],
    "scaling": {"FlipperLength": 10.0, "BodyMass": 100.0},
}


def test_encoding_follows_the_saved_spec():
    row = encode(Penguin("Dream", 50.4, 15.3, 200, 5000), SPEC)
    # The lab's new penguin: island index 1, flipper 200/10, mass 5000/100.
    assert row.tolist() == [[1.0, 50.400001525878906, 15.300000190734863, 20.0, 50.0]]


def test_a_frame_encodes_row_by_row_as_single_penguins_do():
    penguins = [
        Penguin("Dream", 50.4, 15.3, 200, 5000),
        Penguin("Torgersen", 39.1, 18.7, 181, 3750),
    ]
    frame = pd.concat([p.frame() for p in penguins], ignore_index=True)
    single = torch.cat([encode(p, SPEC) for p in penguins])
    assert torch.equal(encode_frame(frame, SPEC), single)
    # With several rows, a refusal names the record (counted from 1) and the column.
    frame.loc[1, "BodyMass"] = 0
    with pytest.raises(PenguinInputError, match=r"^record 2, BodyMass: 0.0 is not a positive"):
        encode_frame(frame, SPEC)


@pytest.mark.parametrize(
    ("penguin", "message"),
    [
        (Penguin("Anvers", 50, 15, 200, 5000), r"island 'Anvers' is not in the saved vocabulary"),
        (Penguin("Dream", float("nan"), 15, 200, 5000), r"CulmenLength: nan is not a positive"),
        (Penguin("Dream", 50, -15, 200, 5000), r"CulmenDepth: -15.0 is not a positive"),
        (Penguin("Dream", 50, 15, 200, float("inf")), r"BodyMass: inf is not a positive"),
        # Finite as a Python float, inf as the model's float32 (and NaN probabilities).
        (Penguin("Dream", 50, 15, 200, 1e39), r"BodyMass: 1e\+39 is not a positive number up to"),
    ],
)
def test_bad_measurements_are_refused(penguin, message):
    with pytest.raises(PenguinInputError, match=message):
        encode(penguin, SPEC)


def test_new_penguin_text_is_checked():
    assert Penguin.parse("Dream, 50.4, 15.3, 200, 5000") == Penguin("Dream", 50.4, 15.3, 200, 5000)
    with pytest.raises(PenguinInputError, match="expected island,culmen_length"):
        Penguin.parse("Dream,50.4")
    with pytest.raises(PenguinInputError, match="flipper_length: 'long' is not a number"):
        Penguin.parse("Dream,50.4,15.3,long,5000")


def test_weights_are_loaded_with_weights_only(tmp_lab):
    # A pickle that is not a plain state dict is refused by torch.load(weights_only=True).
    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    torch.save({"fc1.weight": Evil()}, tmp_lab.weights)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_model(tmp_lab.model_config, tmp_lab.weights)


def test_evaluation_json_is_plain_json(lab):
    assert {"accuracy", "loss", "confusion_matrix"} <= set(json.loads(lab.evaluation.read_text()))

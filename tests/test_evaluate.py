"""Stage 5 and predict: exact metrics, the saved outputs, and refused measurements."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.evaluate import test_metrics as compute_metrics
from penguin_classifier.layout import read_json
from penguin_classifier.model import load_model
from penguin_classifier.predict import Penguin, encode, encode_frame, predict
from torch import nn

SPECIES = ["Adelie", "Gentoo", "Chinstrap"]


class Fixed(nn.Module):
    """A 'model' that predicts the class given in the input's first column."""

    def forward(self, x):
        return torch.log(nn.functional.one_hot(x[:, 0].long(), 3).float() * 0.97 + 0.01)


def test_confusion_matrix_precision_and_recall_are_exact():
    predicted = torch.tensor([[0.0], [0.0], [1.0], [2.0], [0.0]])
    actual = torch.tensor([0, 0, 1, 2, 2])
    m = compute_metrics(Fixed(), predicted, actual, SPECIES)
    # One Chinstrap is taken for an Adelie: 4 of 5 right.
    assert m["accuracy"] == 0.8
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [1, 0, 1]]
    # F1 is the harmonic mean: Adelie 2·(2/3·1)/(2/3+1) = 0.8, Chinstrap 2·(1·0.5)/1.5 = 2/3.
    assert m["per_species"]["Adelie"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["per_species"]["Chinstrap"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    # Probabilities 0.98 for the predicted class, 0.01 for the others.
    expected_loss = -(4 * torch.log(torch.tensor(0.98)) + torch.log(torch.tensor(0.01))) / 5
    assert m["loss"] == pytest.approx(expected_loss.item(), rel=1e-5)


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


def test_importing_evaluate_leaves_the_matplotlib_backend_alone():
    # A learner's inline backend must survive the import (it once called matplotlib.use("Agg")).
    code = (
        "import matplotlib; matplotlib.use('svg'); import penguin_classifier.evaluate; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


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
    # With several rows, a refusal names the row (its index label) and the column.
    frame.loc[1, "BodyMass"] = 0
    with pytest.raises(PenguinInputError, match=r"^row 1, BodyMass: 0.0 is not a positive number"):
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

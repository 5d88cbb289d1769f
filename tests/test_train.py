"""Stage 4, notebook 04 as the job runs it: the lab's loss curve, deterministic, refusals in one
line before anything is saved, and the optimizer a learner picks is the one trained, recorded
(06_distribute reads it) and logged."""

from __future__ import annotations

import mlflow
import pytest
import torch
from penguin_classifier import tracking
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.jsonfile import read_json
from penguin_classifier.model import load_model
from penguin_classifier.runtime import project_root
from penguin_classifier.train import load_split, torch_threads, train
from torch import nn

from penguins.bench import lab_loop, lab_test
from penguins.cli import main, program
from penguins.runner import run_notebook

NOTEBOOK = project_root() / "notebooks" / "04_train.py"


def run_train(capsys, lab, *params: str) -> tuple[int, str]:
    """``penguins run --only train --param P ...`` on ``lab`` in this process: status, stderr."""
    args = ["run", "--only", "train", "--lab-dir", str(lab.root)]
    status = main(args + [a for p in params for a in ("--param", p)])
    return status, capsys.readouterr().err


def losses(lab) -> list[float]:
    return [e["train_loss"] for e in read_json(lab.history)["history"]]


def test_same_loss_curve_as_the_labs_loop(tmp_lab, capsys):
    assert run_train(capsys, tmp_lab, "epochs=5", "device=cpu")[0] == 0
    spec = read_json(tmp_lab.features)
    train = load_split(tmp_lab.train, spec["features"], spec["label"])
    test = load_split(tmp_lab.test, spec["features"], spec["label"])
    model = load_model(tmp_lab.model_config, tmp_lab.initial_weights)
    # Same initial weights, data, batches and optimizer: only float rounding may differ (the lab
    # sums the batch losses as Python floats, notebook 04 as a float32 tensor).
    assert losses(tmp_lab) == pytest.approx(lab_loop(model, train, test, epochs=5), rel=1e-4)
    # Notebook 04 validates with one forward pass over the 102 test rows; the lab's test function
    # over batches of 20 (5 of 20 rows, 1 of 2) gives the same figures for the trained weights:
    # the mean of the 6 batch losses, not the mean over rows, and the same right predictions.
    trained = load_model(tmp_lab.model_config, tmp_lab.weights)
    lab_batches = list(zip(test[0].split(20), test[1].split(20), strict=True))
    val_loss, correct = lab_test(trained, lab_batches, nn.CrossEntropyLoss())
    last = read_json(tmp_lab.history)["history"][-1]
    assert last["val_loss"] == pytest.approx(val_loss, rel=1e-5)
    assert (last["val_correct"], last["val_total"]) == (correct, 102)


def test_the_printed_lines_are_the_labs_and_a_rerun_is_bit_identical(tmp_lab, spark, capsys):
    widgets = {"lab_dir": str(tmp_lab.root), "epochs": "2"}
    run_notebook(NOTEBOOK, widgets, spark)
    printed = capsys.readouterr().out
    first = load_model(tmp_lab.model_config, tmp_lab.weights)
    history = read_json(tmp_lab.history)["history"]
    assert [e["epoch"] for e in history] == [1, 2] and history[1]["val_total"] == 102
    for e in history:  # the lab's three lines, with the figures history.json keeps
        assert (
            f"Epoch: {e['epoch']}\n"
            f"Training set: Average loss: {e['train_loss']:.6f}\n"
            f"Validation set: Average loss: {e['val_loss']:.6f}, "
            f"Accuracy: {e['val_correct']}/102 ({100 * e['val_correct'] / 102:.0f}%)\n"
        ) in printed
    run_notebook(NOTEBOOK, widgets, spark)
    again = load_model(tmp_lab.model_config, tmp_lab.weights)
    # No shuffling, seeded initial weights, one thread: the same weights to the last bit.
    assert all(
        torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters(), strict=True)
    )


def test_train_stage_outputs_and_history(lab):
    history = read_json(lab.history)
    assert history["epochs"] == 100 and len(history["history"]) == 100
    assert history["history"][-1]["val_accuracy"] >= 0.97
    assert history["history"][-1]["train_loss"] < history["history"][0]["train_loss"]


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # lr=1e30: Adam's first steps make the weights inf, the loss NaN (a model of NaN
        # weights was once committed and registered).
        (
            ["epochs=3", "lr=1e30"],
            "epoch 1: the loss is nan, the weights are no longer finite numbers: "
            "try a smaller learning rate (lr)",
        ),
        (["epochs=0"], "parameter epochs: 0 is not between 1 and 100000"),
        (["batch_size=twenty"], "parameter batch_size: 'twenty' is not an integer"),
        (["device=tpu"], "parameter device: 'tpu' is not one of ['auto', 'cpu', 'cuda']"),
        (["optimizer=rmsprop"], "parameter optimizer: 'rmsprop' is not one of ['adam', 'sgd']"),
        pytest.param(
            ["device=cuda"],
            "parameter device: cuda, but torch finds no GPU here: use auto or cpu",
            marks=NO_GPU,
        ),
    ],
)
def test_refused_before_anything_is_saved(tmp_lab, capsys, params, message):
    before = (tmp_lab.weights.parent / "_manifest.json").read_bytes()
    assert run_train(capsys, tmp_lab, *params) == (2, f"penguins run: train: {message}\n")
    # trained/ still holds the earlier commit, record and all: the hand-over was never opened.
    assert (tmp_lab.weights.parent / "_manifest.json").read_bytes() == before
    tmp_lab.require("trained")


def test_train_without_model_says_which_stage_to_run(tmp_lab, capsys):
    tmp_lab.initial_weights.unlink()
    status, err = run_train(capsys, tmp_lab, "epochs=1")
    assert status == 2
    rerun = f"{program('penguins')} run --lab-dir {tmp_lab.root} --param epochs=1"
    rerun += " --only model,train"
    assert err == f"penguins run: train: {tmp_lab.initial_weights} is missing: run: {rerun}\n"


def test_failed_training_leaves_no_weights_a_later_stage_would_use(tmp_lab, spark, monkeypatch):
    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half")  # a partial file, then the disk fills up
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="no space left on device"):
        run_notebook(NOTEBOOK, {"lab_dir": str(tmp_lab.root), "epochs": "1"}, spark)
    with pytest.raises(PenguinInputError, match=r"trained is not committed .*: run 04_train first"):
        tmp_lab.require("trained")


def test_the_optimizer_is_a_parameter_recorded_and_logged(tmp_lab, capsys):
    # A learner picks SGD: notebook 04 trains with it, records it for 06 and logs it to MLflow.
    assert run_train(capsys, tmp_lab, "epochs=2", "optimizer=sgd", "device=cpu")[0] == 0
    history = read_json(tmp_lab.history)
    assert history["optimizer"] == "sgd"
    record = tracking.reopen(tmp_lab, "trained")
    assert mlflow.get_run(record["train_run_id"]).data.params["optimizer"] == "sgd"
    # The same 2 epochs of the lab's train with torch's SGD, from the same weights and batches:
    # the same losses and weights (Adam's would differ from the first step).
    spec = read_json(tmp_lab.features)
    x, y = load_split(tmp_lab.train, spec["features"], spec["label"])
    batches = list(zip(x.split(20), y.split(20), strict=True))
    model = load_model(tmp_lab.model_config, tmp_lab.initial_weights)
    sgd = torch.optim.SGD(model.parameters(), lr=0.001)
    with torch_threads(1):
        expected = [train(model, batches, sgd) for _ in range(2)]
    assert losses(tmp_lab) == pytest.approx(expected, rel=1e-6)
    trained = load_model(tmp_lab.model_config, tmp_lab.weights)
    assert all(
        torch.allclose(a, b, rtol=1e-6, atol=0)
        for a, b in zip(trained.parameters(), model.parameters(), strict=True)
    )

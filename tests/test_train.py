"""Stage 4: the in-memory loop matches the lab's, is deterministic and saves atomically."""

from __future__ import annotations

import pytest
import torch
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.layout import Lab, read_json
from penguin_classifier.model import create_model
from penguin_classifier.train import fit, load_split, train_stage

from penguins.bench import lab_loop, project_loop


@pytest.fixture(scope="module")
def splits(lab):
    spec = read_json(lab.features)
    return (
        load_split(lab.train, spec["features"], spec["label"]),
        load_split(lab.test, spec["features"], spec["label"]),
    )


def test_same_loss_curve_as_the_labs_loop(splits):
    train, test = splits
    lab = lab_loop(train, test, epochs=5, seed=0)
    ours = project_loop(train, test, epochs=5, seed=0)
    # Same model, data, batches and optimizer: only float rounding may differ.
    assert ours == pytest.approx(lab, rel=1e-4)


def test_rerun_gives_bit_identical_weights(splits):
    train, test = splits
    a, b = create_model(seed=0), create_model(seed=0)
    fit(a, train, test, epochs=3, log=None)
    fit(b, train, test, epochs=3, log=None)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_history_lines_are_the_labs(splits):
    train, test = splits
    lines = []
    history = fit(create_model(seed=0), train, test, epochs=2, log=lines.append)
    assert len(history) == 2 and history[1].val_total == 102
    assert lines[0].splitlines()[0] == "Epoch: 1"
    assert lines[0].splitlines()[1].startswith("Training set: Average loss: ")
    assert lines[0].splitlines()[2].startswith("Validation set: Average loss: ")
    assert (
        lines[0]
        .splitlines()[2]
        .endswith(
            f"Accuracy: {history[0].val_correct}/102 ({100 * history[0].val_correct / 102:.0f}%)"
        )
    )


def test_a_loss_turned_nan_stops_training_before_anything_is_saved(tmp_lab):
    # lr=1e30: Adam's first steps make the weights inf, the loss NaN (a model of NaN weights
    # was once committed and registered).
    before = (tmp_lab.weights.parent / "_manifest.json").read_bytes()
    with pytest.raises(PenguinInputError, match=r"^epoch 1: the loss is nan, .*\(lr\)$"):
        train_stage(tmp_lab, epochs=3, lr=1e30, log=None)
    assert (tmp_lab.weights.parent / "_manifest.json").read_bytes() == before


def test_train_stage_outputs_and_history(lab):
    history = read_json(lab.history)
    assert history["epochs"] == 100 and len(history["history"]) == 100
    assert history["history"][-1]["val_accuracy"] >= 0.97
    assert history["history"][-1]["train_loss"] < history["history"][0]["train_loss"]


def test_train_without_model_says_which_stage_to_run(tmp_lab):
    tmp_lab.initial_weights.unlink()
    with pytest.raises(PenguinInputError, match=r"initial\.pt is missing: run 03_model again"):
        train_stage(tmp_lab, epochs=1)


def test_failed_training_leaves_no_weights_a_later_stage_would_use(tmp_lab, monkeypatch):
    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half")  # a partial file, then the disk fills up
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        train_stage(Lab(tmp_lab.root), epochs=1)
    with pytest.raises(PenguinInputError, match=r"trained is not committed .*: run 04_train first"):
        tmp_lab.require("trained")

"""Stage 3: the lab's network, its size, and notebook 03's seeded initial weights."""

from __future__ import annotations

import torch
from penguin_classifier.layout import read_json
from penguin_classifier.model import PenguinNet, load_model
from penguin_classifier.runtime import project_root

from penguins.runner import run_notebook

NOTEBOOK = project_root() / "notebooks" / "03_model.py"


def test_shapes():
    shapes = {name: tuple(p.shape) for name, p in PenguinNet(5, 10, 3).named_parameters()}
    assert shapes == {
        "fc1.weight": (10, 5),
        "fc1.bias": (10,),
        "fc2.weight": (10, 10),
        "fc2.bias": (10,),
        "fc3.weight": (3, 10),
        "fc3.bias": (3,),
    }


def test_output_is_log_probabilities():
    out = PenguinNet()(torch.randn(7, 5))
    assert out.shape == (7, 3)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(7))


def test_model_stage_files(lab):
    config = read_json(lab.model_config)
    # 5·10+10 + 10·10+10 + 10·3+3 = 60 + 110 + 33.
    assert config == {"n_features": 5, "hidden": 10, "n_classes": 3, "seed": 0, "parameters": 203}
    initial = load_model(lab.model_config, lab.initial_weights)
    torch.manual_seed(0)  # what the notebook does before it creates the network
    assert torch.equal(initial.fc1.weight, PenguinNet(5, 10, 3).fc1.weight)


def weights(lab) -> list[torch.Tensor]:
    return list(load_model(lab.model_config, lab.initial_weights).parameters())


def test_the_seed_fixes_the_initial_weights_and_leaves_the_global_rng_alone(lab, tmp_lab, spark):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    run_notebook(NOTEBOOK, {"lab_dir": str(tmp_lab.root), "seed": "0"}, spark)
    assert torch.rand(1) == expected_next  # the notebook seeded a forked generator only
    # Seed 0 again: the session's weights, bit for bit; seed 1: others.
    assert all(torch.equal(a, b) for a, b in zip(weights(tmp_lab), weights(lab), strict=True))
    run_notebook(NOTEBOOK, {"lab_dir": str(tmp_lab.root), "seed": "1"}, spark)
    assert not torch.equal(weights(tmp_lab)[0], weights(lab)[0])


def test_a_smaller_hidden_layer(tmp_lab, spark):
    run_notebook(NOTEBOOK, {"lab_dir": str(tmp_lab.root), "hidden": "4"}, spark)
    config = read_json(tmp_lab.model_config)
    # 5·4+4 + 4·4+4 + 4·3+3 = 24 + 20 + 15.
    assert (config["hidden"], config["parameters"]) == (4, 59)
    assert weights(tmp_lab)[0].shape == (4, 5)

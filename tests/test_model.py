"""Stage 3: the lab's network, its size, and seeded initial weights."""

from __future__ import annotations

import torch
from penguin_classifier.layout import read_json
from penguin_classifier.model import create_model, load_model, parameter_count, parameter_table


def test_shapes_and_parameter_count():
    model = create_model(hidden=10)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "fc1.weight": (10, 5),
        "fc1.bias": (10,),
        "fc2.weight": (10, 10),
        "fc2.bias": (10,),
        "fc3.weight": (3, 10),
        "fc3.bias": (3,),
    }
    # 5·10+10 + 10·10+10 + 10·3+3 = 60 + 110 + 33.
    assert parameter_count(model) == 203
    assert parameter_table(model)["values"].tolist() == [50, 10, 100, 10, 30, 3]
    assert parameter_count(create_model(hidden=4)) == 5 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3


def test_output_is_log_probabilities():
    out = create_model()(torch.randn(7, 5))
    assert out.shape == (7, 3)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(7))


def test_seed_fixes_the_initial_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = create_model(seed=0), create_model(seed=0), create_model(seed=1)
    assert torch.rand(1) == expected_next
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_model_stage_files(lab):
    config = read_json(lab.model_config)
    assert config == {"n_features": 5, "hidden": 10, "n_classes": 3, "seed": 0, "parameters": 203}
    initial = load_model(lab.model_config, lab.initial_weights)
    assert torch.equal(initial.fc1.weight, create_model(seed=0).fc1.weight)

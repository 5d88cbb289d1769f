"""Stage 3: notebook 03's network, its size and seeded initial weights, and the network as a
TorchScript program that every later stage rebuilds; a learner's change to the class in 03 carries
through training, evaluation, the registered model and ``penguins predict``."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
import torch
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.jsonfile import read_json
from penguin_classifier.model import PROGRAM, load_model, program_path, save_model, script
from penguin_classifier.predict import Penguin, predict
from penguin_classifier.registry import load_pyfunc
from penguin_classifier.runtime import project_root
from torch import nn

from penguins.jobs import local_tasks, only_tasks
from penguins.runner import run_notebook, run_tasks

NOTEBOOK = project_root() / "notebooks" / "03_model.py"


def test_the_network_is_the_labs(lab):
    network = load_model(lab.model_config, lab.initial_weights)
    shapes = {name: tuple(p.shape) for name, p in network.program.named_parameters()}
    assert shapes == {
        "fc1.weight": (10, 5),
        "fc1.bias": (10,),
        "fc2.weight": (10, 10),
        "fc2.bias": (10,),
        "fc3.weight": (3, 10),
        "fc3.bias": (3,),
    }
    assert network.program.original_name == "PenguinNet"  # the class of 03's cell
    out = network(torch.randn(7, 5))
    assert out.shape == (7, 3)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(7))  # log-probabilities


def test_model_stage_files(lab):
    config = read_json(lab.model_config)
    # 5·10+10 + 10·10+10 + 10·3+3 = 60 + 110 + 33.
    assert config == {"n_features": 5, "hidden": 10, "n_classes": 3, "seed": 0, "parameters": 203}
    initial = load_model(lab.model_config, lab.initial_weights)
    torch.manual_seed(0)  # what the notebook does before it creates the network: fc1 comes first
    assert torch.equal(initial.program.fc1.weight, nn.Linear(5, 10).weight)
    # network.pt holds the same initial weights as initial.pt.
    program = torch.jit.load(program_path(lab.model_config))
    assert all(
        torch.equal(a, b) for a, b in zip(program.parameters(), initial.parameters(), strict=True)
    )


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


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 4)
        self.fc2 = nn.Linear(4, 3)

    def forward(self, x):
        return torch.log_softmax(self.fc2(torch.tanh(self.fc1(x))), dim=1)


class AsNumpy(TwoLayers):
    def forward(self, x):
        return self.fc1(x).numpy()  # TorchScript has no numpy


class NoSuchLayer(TwoLayers):
    def forward(self, x):
        return self.fc9(x)


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (AsNumpy, r"^TorchScript cannot compile the network AsNumpy: 'Tensor' object has no "),
        (
            NoSuchLayer,
            r"^TorchScript cannot compile the network NoSuchLayer: Module 'NoSuchLayer' ",
        ),
    ],
)
def test_a_network_torchscript_cannot_compile_is_one_line_naming_the_line(network, message):
    with pytest.raises(PenguinInputError, match=message) as refused:
        script(network())
    assert "\n" not in str(refused.value)
    assert "(test_model.py line " in str(refused.value)  # where the class's forward is


@pytest.fixture
def saved(tmp_path) -> Path:
    """A folder as 03 commits it, for TwoLayers: config.json, network.pt, initial.pt."""
    (tmp_path / "config.json").write_text("{}")
    save_model(script(TwoLayers()), tmp_path / PROGRAM, tmp_path / "initial.pt")
    return tmp_path


def test_the_program_trains_and_tests_under_inference_mode_and_pickles(saved):
    network = load_model(saved / "config.json", saved / "initial.pt")
    optimizer = torch.optim.Adam(network.parameters(), lr=0.1)
    x, y = torch.randn(20, 5), torch.arange(20) % 3
    before = network.program.fc1.weight.detach().clone()
    for _ in range(3):  # as notebook 04: train, then test under inference_mode
        network.train()
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(network(x), y).backward()
        optimizer.step()
        with torch.inference_mode():  # a bare trained ScriptModule fails here (pytorch#82550)
            network.eval()
            out = network(x)
    assert not torch.equal(network.program.fc1.weight, before)
    # A Spark task gets it pickled (cloudpickle): the program, with the trained weights.
    copy = pickle.loads(cloudpickle.dumps(network))
    with torch.no_grad():
        assert torch.equal(copy(x), out)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no program", r"network\.pt is missing: run 03_model again \(it saves the network\)$"),
        ("not a program", r"network\.pt is not a network torch\.jit\.load can read \(.*\): run"),
        (
            "another network's weights",  # a hidden layer of 10, not 4
            r"initial\.pt does not fit the network of .*network\.pt \(tensors program\.fc1\.bias, "
            r"program\.fc1\.weight, program\.fc2\.weight differ\): run 03_model again, then",
        ),
        (
            "weights of the class, not of the program",  # names without program.
            r"initial\.pt does not fit .* \(tensors fc1\.bias, fc1\.weight, fc2\.bias and 5 more",
        ),
    ],
)
def test_a_network_that_cannot_be_rebuilt_is_one_line(saved, change, message):
    if change == "no program":
        (saved / PROGRAM).unlink()
    elif change == "not a program":
        (saved / PROGRAM).write_bytes(b"PK not a zip archive")
    elif change == "another network's weights":
        other = TwoLayers()
        other.fc1, other.fc2 = nn.Linear(5, 10), nn.Linear(10, 3)
        torch.save(script(other).state_dict(), saved / "initial.pt")
    else:
        torch.save(TwoLayers().state_dict(), saved / "initial.pt")
    with pytest.raises(PenguinInputError, match=message):
        load_model(saved / "config.json", saved / "initial.pt")


# The learner's edit of notebook 03's class: a third hidden layer, tanh instead of ReLU after it.
LAB_LAYERS = "        self.fc3 = nn.Linear(hidden, n_classes)\n"
LAB_FORWARD = "        return F.log_softmax(self.fc3(fc2_output).float(), dim=1)\n"
EDITED_LAYERS = "        self.fc4 = nn.Linear(hidden, hidden)\n" + LAB_LAYERS
EDITED_FORWARD = (
    "        fc4_output = torch.tanh(self.fc4(fc2_output))\n"
    "        return F.log_softmax(self.fc3(fc4_output).float(), dim=1)\n"
)


def test_a_learners_change_of_the_network_carries_through_to_the_registered_model(
    tmp_lab, tmp_path, spark
):
    source = NOTEBOOK.read_text()
    assert source.count(LAB_LAYERS) == source.count(LAB_FORWARD) == 1  # the lines to change
    edited = tmp_path / "03_model.py"
    edited.write_text(
        source.replace(LAB_LAYERS, EDITED_LAYERS).replace(LAB_FORWARD, EDITED_FORWARD)
    )
    # penguins run --only model,train,evaluate, with the model task running the edited copy.
    tasks = only_tasks(local_tasks(), ["model", "train", "evaluate"])
    tasks[0].notebook = edited
    run_tasks(tasks, {"lab_dir": str(tmp_lab.root)}, spark, log=lambda *_: None)

    # 203 + the new layer's 10·10+10 = 313.
    assert read_json(tmp_lab.model_config)["parameters"] == 313
    trained = load_model(tmp_lab.model_config, tmp_lab.weights)  # 04's weights fit the program
    assert trained.program.fc4.weight.shape == (10, 10)
    assert "torch.tanh" in trained.program.code
    assert read_json(tmp_lab.evaluation)["accuracy"] > 0.9  # 05 evaluated the new network

    # The version 05 registered: its network is the edited one, in this process and in a new
    # one, where penguins predict answers as the lab folder's network does.
    registered = read_json(tmp_lab.folder("evaluation") / "mlflow.json")
    uri = f"models:/{registered['registered_model']}/{registered['version']}"
    model, _ = load_pyfunc(uri)
    assert sum(p.numel() for p in model.unwrap_python_model().model.parameters()) == 313
    asked = subprocess.run(
        [Path(sys.executable).with_name("penguins"), "predict", "--lab-dir", str(tmp_lab.root)]
        + ["--island", "Dream", "--culmen-length", "50.4", "--culmen-depth", "15.3"]
        + ["--flipper-length", "200", "--body-mass", "5000", "--model-uri", uri, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    species, probabilities = predict(tmp_lab, Penguin("Dream", 50.4, 15.3, 200.0, 5000.0))
    assert answer["species"] == species == "Gentoo"
    assert answer["probabilities"] == pytest.approx(probabilities, rel=1e-5)

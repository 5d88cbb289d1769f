"""The lab's network as notebook 03 commits it: a TorchScript program, its code with its weights.

Notebook 03 defines the network's class in a cell, for the learner to read and change; every
later place that builds the network (04's training, 05, 06's ranks, the registered model, batch
scoring, serving) has only what 03 committed, not that cell. So 03 saves the network as a
program: ``torch.jit.script`` compiles the class's ``forward`` into TorchScript and
``torch.jit.save`` writes it with the weights (``network.pt``, beside ``config.json``);
:func:`load_model` rebuilds it with ``torch.jit.load`` and no Python class at all, then loads the
weights to use (03's initial ones, 04's or 06's trained ones) safely, with
``torch.load(path, weights_only=True)``.

Why TorchScript: the program is trainable (parameters, ``backward``, any optimizer, DDP and
Horovod's ``DistributedOptimizer``, which read ``named_parameters``) and loads on torch 2.3.1
(Databricks Runtime 15.4 LTS ML) as on 2.13, where ``torch.jit`` warns that it is deprecated
(a DeprecationWarning, hidden by default). ``torch.export`` keeps no trainable module on these
versions (its module refuses ``train()``), and saving the class's source beside the weights
would run Python code read from the lab folder. :class:`Network` wraps the program for two
known gaps: a scripted program that has trained fails under ``torch.inference_mode``
(pytorch/pytorch#82550: the JIT's optimized graph saves tensors for backward), and torch
pickles no ScriptModule (a Spark task gets the network pickled).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch
from torch import nn

from .errors import PenguinInputError
from .records import shortlist

PROGRAM = "network.pt"  # the scripted network, beside 03's config.json


def program_path(config_path) -> Path:
    """Where 03 saved the scripted network: ``network.pt`` beside ``config.json``."""
    return Path(config_path).with_name(PROGRAM)


class Network(nn.Module):
    """A scripted network (``torch.jit.script`` or ``torch.jit.load``) to train, evaluate and
    pickle as the module it was compiled from.

    Its parameters are the program's, named ``program.<name>`` (``program.fc1.weight``).
    Pickled, it travels as the program's bytes and arrives as the program (``torch.jit.load``):
    the same network and weights in a process that has none of this package.
    """

    def __init__(self, program: torch.jit.ScriptModule):
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Unoptimized, the program records autograd as eager code does, so inference_mode works
        # after training (pytorch/pytorch#82550); for these matrices it is as fast.
        with torch.jit.optimized_execution(False):
            return self.program(x)

    def __reduce__(self):
        saved = io.BytesIO()
        torch.jit.save(self.program, saved)
        return torch.jit.load, (io.BytesIO(saved.getvalue()),)


def script(model: nn.Module) -> Network:
    """``model`` compiled by TorchScript; one line naming the problem where it cannot be.

    TorchScript compiles ``forward`` from its source (a notebook's cell included) and accepts a
    subset of Python: e.g. no ``.numpy()``, one generator per comprehension, attributes that
    ``__init__`` set.
    """
    try:
        return Network(torch.jit.script(model))
    except (RuntimeError, OSError, torch.jit.frontend.FrontendError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        problem = lines[0].rstrip(" :") if lines else type(error).__name__
        where = next(
            (m for line in lines if (m := re.match(r'File "(.+)", line (\d+)', line))), None
        )
        at = f" ({Path(where[1]).name} line {where[2]})" if where else ""
        raise PenguinInputError(
            f"TorchScript cannot compile the network {type(model).__name__}: {problem}{at}; "
            "change the class so that torch.jit.script(model) works"
        ) from None


def save_model(network: Network, program_path, weights_path) -> None:
    """Save the program (its code and weights) and its weights alone, for :func:`load_model`."""
    torch.jit.save(network.program, str(program_path))
    torch.save(network.state_dict(), weights_path)


def load_model(config_path, weights_path) -> Network:
    """The network 03 saved beside ``config.json``, with ``weights_path``'s weights loaded safely
    (``weights_only``); one line naming the problem where it cannot be rebuilt."""
    program = program_path(config_path)
    if not program.is_file():
        raise PenguinInputError(f"{program} is missing: run 03_model again (it saves the network)")
    try:
        network = Network(torch.jit.load(str(program), map_location="cpu"))
    except RuntimeError as error:
        raise PenguinInputError(
            f"{program} is not a network torch.jit.load can read ({first_line(error)}): "
            "run 03_model again"
        ) from None
    weights = torch.load(weights_path, map_location="cpu", weights_only=True)
    expected = {name: tuple(t.shape) for name, t in network.state_dict().items()}
    given = {n: tuple(getattr(t, "shape", ())) for n, t in getattr(weights, "items", dict)()}
    if given != expected:  # other names or shapes: the weights of another network
        differ = sorted(
            n for n in expected.keys() | given.keys() if given.get(n) != expected.get(n)
        )
        raise PenguinInputError(
            f"{weights_path} does not fit the network of {program} (tensors {shortlist(differ)} "
            "differ): run 03_model again, then the stages after it"
        )
    network.load_state_dict(weights)
    network.eval()
    return network


def first_line(error: Exception) -> str:
    """The first sentence of an error's message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0].split(". ")[0] if lines else type(error).__name__

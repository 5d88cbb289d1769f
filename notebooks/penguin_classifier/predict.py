"""Species from raw measurements, with the saved features spec and trained weights."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import PenguinInputError
from .layout import Lab, read_json
from .model import load_model


@dataclass
class Penguin:
    island: str
    culmen_length: float  # mm
    culmen_depth: float  # mm
    flipper_length: float  # mm
    body_mass: float  # g

    @classmethod
    def parse(cls, text: str) -> Penguin:
        """``"Dream,50.4,15.3,200,5000"``: island, bill length, bill depth, flipper, mass."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 5:
            raise PenguinInputError(
                f"new penguin {text!r}: expected island,culmen_length,culmen_depth,"
                "flipper_length,body_mass"
            )
        names = ["culmen_length", "culmen_depth", "flipper_length", "body_mass"]
        values = []
        for name, part in zip(names, parts[1:], strict=True):
            try:
                values.append(float(part))
            except ValueError:
                raise PenguinInputError(f"{name}: {part!r} is not a number") from None
        return cls(parts[0], *values)


def encode(penguin: Penguin, spec: dict) -> torch.Tensor:
    """One feature row in the order of ``features.json``; bad values raise PenguinInputError."""
    islands = spec["islands"]
    if penguin.island not in islands:
        raise PenguinInputError(
            f"island {penguin.island!r} is not in the saved vocabulary {islands}"
        )
    for name in ("culmen_length", "culmen_depth", "flipper_length", "body_mass"):
        value = getattr(penguin, name)
        if not math.isfinite(value) or value <= 0:
            raise PenguinInputError(f"{name}: {value} is not a positive number")
    scaling = spec["scaling"]
    values = {
        "IslandIdx": float(islands.index(penguin.island)),
        "CulmenLength": penguin.culmen_length,
        "CulmenDepth": penguin.culmen_depth,
        "FlipperScaled": penguin.flipper_length / scaling["FlipperLength"],
        "MassScaled": penguin.body_mass / scaling["BodyMass"],
    }
    return torch.tensor([[values[f] for f in spec["features"]]], dtype=torch.float32)


def classify(model, penguin: Penguin, spec: dict) -> tuple[str, dict[str, float]]:
    """The most likely species and the probability of each."""
    with torch.no_grad():
        probabilities = model(encode(penguin, spec)).exp()[0].tolist()
    species = spec["species"]
    best = max(range(len(species)), key=probabilities.__getitem__)
    return species[best], dict(zip(species, probabilities, strict=True))


def predict(lab: Lab, penguin: Penguin) -> tuple[str, dict[str, float]]:
    """Classify ``penguin`` with the lab folder's features spec and trained weights."""
    lab.require("prepared", "model", "trained")
    spec = read_json(lab.features)
    return classify(load_model(lab.model_config, lab.weights), penguin, spec)

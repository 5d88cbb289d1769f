"""Species from raw measurements, with the saved features spec and trained weights.

The raw columns are the lab's: ``Island`` (a name), ``CulmenLength`` and ``CulmenDepth`` (mm),
``FlipperLength`` (mm), ``BodyMass`` (g). :func:`encode_frame` turns a pandas DataFrame of them
into the model's feature rows as ``features.json`` (:func:`features.feature_spec`) says: the
island's index in ``spec["islands"]``, the measurements divided by ``spec["scaling"]``, in the
order of ``spec["features"]``; values that break :func:`features.is_measurement` are refused.
This is the pandas side of the one feature spec; notebook 02 applies it in Spark. One penguin
is a one-row frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .errors import PenguinInputError
from .features import INPUTS, MEASUREMENT, MEASUREMENTS, is_measurement
from .jsonfile import read_json
from .lab import Lab
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

    def frame(self) -> pd.DataFrame:
        """This penguin as a one-row frame of the raw columns, measurements as floats."""
        values = [self.culmen_length, self.culmen_depth, self.flipper_length, self.body_mass]
        return pd.DataFrame([[self.island, *map(float, values)]], columns=INPUTS)


def check_frame(frame: pd.DataFrame, spec: dict) -> None:
    """Raise PenguinInputError, one line, for a value the model cannot take.

    A missing column, an island not in the saved vocabulary, a measurement that breaks
    :func:`features.is_measurement` (missing values included). The record is named when there
    are several (:func:`row_name`).
    """
    missing = [c for c in INPUTS if c not in frame.columns]
    if missing:
        raise PenguinInputError(f"missing columns {missing}: expected {INPUTS}")

    islands = spec["islands"]
    bad = {"Island": ~frame["Island"].isin(islands)}
    for column in MEASUREMENTS:
        values = numbers(frame[column])
        bad[column] = ~is_measurement(values)
    for column, rows in bad.items():
        if rows.any():
            i = int(np.argmax(rows.to_numpy()))
            value = frame[column].iloc[i]
            if column == "Island":
                problem = f"island {value!r} is not in the saved vocabulary {islands}"
            else:
                problem = f"{column}: {value} is not {MEASUREMENT}"
            raise PenguinInputError(row_name(frame, i) + problem)


def row_name(frame: pd.DataFrame, i: int) -> str:
    """``"record <i + 1>, "`` for the ``i``-th row (from 0) of a frame of several, counted from 1
    as a person counts the records of a request; else nothing."""
    return f"record {i + 1}, " if len(frame) > 1 else ""


def numbers(column: pd.Series) -> pd.Series:
    """As float64; what is not a number becomes NaN."""
    return pd.to_numeric(column, errors="coerce").astype("float64")


def encode_frame(frame: pd.DataFrame, spec: dict) -> torch.Tensor:
    """Feature rows in the order of ``features.json``; bad values raise PenguinInputError."""
    check_frame(frame, spec)
    scaling = spec["scaling"]
    values = {
        "IslandIdx": frame["Island"].map({name: i for i, name in enumerate(spec["islands"])}),
        "CulmenLength": numbers(frame["CulmenLength"]),
        "CulmenDepth": numbers(frame["CulmenDepth"]),
        "FlipperScaled": numbers(frame["FlipperLength"]) / scaling["FlipperLength"],
        "MassScaled": numbers(frame["BodyMass"]) / scaling["BodyMass"],
    }
    columns = [values[f].to_numpy(dtype="float64") for f in spec["features"]]
    return torch.tensor(np.stack(columns, axis=1), dtype=torch.float32)


def encode(penguin: Penguin, spec: dict) -> torch.Tensor:
    """One feature row in the order of ``features.json``; bad values raise PenguinInputError."""
    return encode_frame(penguin.frame(), spec)


def probability_column(species: str) -> str:
    return f"probability_{species}"


def classify_frame(model, frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """``species`` (the most likely) and ``probability_<species>`` for each row of ``frame``.

    Never NaN: values near float32's largest can overflow the network's arithmetic even so
    (``CulmenDepth`` 3.4e38), and such a row is refused, as is any row of a model whose weights
    are not numbers.
    """
    with torch.no_grad():
        probabilities = model(encode_frame(frame, spec)).exp().numpy().astype("float64")
    lost = ~np.isfinite(probabilities).all(axis=1)
    if lost.any():
        raise PenguinInputError(
            f"{row_name(frame, int(np.argmax(lost)))}the model's probabilities are NaN: these "
            "values overflow its float32 arithmetic, or its weights are not numbers"
        )
    species = spec["species"]
    result = pd.DataFrame({"species": np.array(species)[probabilities.argmax(axis=1)]})
    for i, name in enumerate(species):
        result[probability_column(name)] = probabilities[:, i]
    return result


def classify(model, penguin: Penguin, spec: dict) -> tuple[str, dict[str, float]]:
    """The most likely species and the probability of each."""
    row = classify_frame(model, penguin.frame(), spec).iloc[0]
    return str(row["species"]), {
        name: float(row[probability_column(name)]) for name in spec["species"]
    }


def predict(lab: Lab, penguin: Penguin) -> tuple[str, dict[str, float]]:
    """Classify ``penguin`` with the lab folder's features spec and trained weights."""
    lab.require("prepared", "model", "trained")
    spec = read_json(lab.features)
    return classify(load_model(lab.model_config, lab.weights), penguin, spec)

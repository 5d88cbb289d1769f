"""The one feature spec: what training (Spark, notebook 02) and the model's predict (pandas,
:mod:`predict`) both apply, so that a penguin means the same numbers in both.

* the raw columns, their order and what counts as missing;
* the island vocabulary (sorted, saved in ``features.json`` by 02: index i is the same island
  in every run) and the scaling (FlipperLength / 10, BodyMass / 100: near the bill sizes);
* the feature order the network reads, the label and the species;
* the value rule: a measurement is finite, positive and held by float32. float32 is what the
  model computes in: ``1e39`` is a finite float64 but ``inf`` there, and the network answers
  NaN. Ingest (a CSV cell), prepare (a Spark column), the model (a pandas column), batch
  scoring (a Spark column) and ``penguins predict`` (an argument) all apply
  :func:`is_measurement` and say :data:`MEASUREMENT` when a value breaks it.
"""

from __future__ import annotations

SPECIES = ["Adelie", "Gentoo", "Chinstrap"]  # label 0, 1, 2
MEASUREMENTS = ["CulmenLength", "CulmenDepth", "FlipperLength", "BodyMass"]  # mm, mm, mm, g
INPUTS = ["Island", *MEASUREMENTS]  # what the registered model takes
LABEL = "Species"
COLUMNS = [*INPUTS, LABEL]  # the lab's CSV
MISSING = {"", "NA", "NaN", "nan"}  # how the lab's CSV writes a missing value

SCALING = {"FlipperLength": 10.0, "BodyMass": 100.0}  # FlipperScaled = FlipperLength / 10, ...
FEATURES = ["IslandIdx", "CulmenLength", "CulmenDepth", "FlipperScaled", "MassScaled"]

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
MEASUREMENT = "a positive number up to 3.4e38 (float32)"


def is_measurement(value):
    """Whether ``value`` is ``0 < value <= FLOAT32_MAX``: a float, a numpy array, a pandas
    Series or a Spark Column (element-wise, then). NaN fails both comparisons (in Spark, NaN is
    above every number, so it fails the second), inf the second.
    """
    return (value > 0) & (value <= FLOAT32_MAX)


def feature_spec(islands: list[str]) -> dict:
    """``features.json``'s spec for a sorted island vocabulary: what predict needs to encode."""
    return {
        "features": FEATURES,
        "label": LABEL,
        "species": SPECIES,
        "islands": sorted(islands),
        "scaling": SCALING,
    }

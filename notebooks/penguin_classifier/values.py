"""The one rule for a measurement the model can use: finite, positive, and held by float32.

float32 is what the model computes in: ``1e39`` is a finite float64 but ``inf`` there, and the
network answers NaN. Ingest (a CSV cell), prepare (Spark's min and max), the model (a pandas
column), batch scoring (a Spark column) and ``penguins predict`` (an argument) all apply
:func:`is_measurement`, and say :data:`MEASUREMENT` when a value breaks it.
"""

from __future__ import annotations

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
MEASUREMENT = "a positive number up to 3.4e38 (float32)"


def is_measurement(value):
    """Whether ``value`` is ``0 < value <= FLOAT32_MAX``: a float, a numpy array, a pandas
    Series or a Spark Column (element-wise, then). NaN fails both comparisons (in Spark, NaN is
    above every number, so it fails the second), inf the second.
    """
    return (value > 0) & (value <= FLOAT32_MAX)

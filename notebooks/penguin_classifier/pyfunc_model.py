"""The trained classifier as an MLflow pyfunc model: raw measurements in, species out.

Logged by :func:`registry.log_model` as MLflow's "models from code": MLflow stores this file
and runs it when the model is loaded (no pickled object), with its artifacts: ``features.json``
(island vocabulary, scaling, feature order, species), ``config.json``, ``network.pt`` (the
network as TorchScript, :mod:`model`), the weights, and ``penguin_classifier``, a copy of this
package as it was when the model was logged. So ``mlflow.pyfunc.load_model(uri).predict(frame)``
works wherever MLflow and torch are installed::

    Island  CulmenLength  CulmenDepth  FlipperLength  BodyMass      (mm, mm, mm, g; floats)
    Dream   50.4          15.3         200.0          5000.0
    →  species  probability_Adelie  probability_Gentoo  probability_Chinstrap
       Gentoo   0.0000              0.9800              0.0200

A model version runs the code it was logged with, whatever the working tree or the installed
``penguin_classifier`` holds now: :meth:`PenguinClassifier.load_context` imports the model's own
copy under a name of its own, and this file imports nothing of the package. An unknown island, a
missing or non-positive measurement raises :class:`ModelInputError` naming the row and column:
the model never guesses.
"""

import importlib
import importlib.util
import json
import sys
import uuid
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class ModelInputError(MlflowException):
    """A value the model refuses, in one line naming row and column: a scoring server (MLflow's,
    Databricks serving) answers it with a 400 and this message, where it turns any other error
    into a generic one; ``penguins predict`` prints it (:func:`registry.classify_with`)."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def own_package(folder: Path):
    """The package in ``folder`` imported under a new name, beside any ``penguin_classifier``
    already imported (the working tree's, an older model's): its modules import each other
    relatively, so they all come from ``folder``."""
    name = f"penguin_model_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


class PenguinClassifier(PythonModel):
    """Species and their probabilities for a DataFrame of raw measurements."""

    def load_context(self, context):
        package = own_package(Path(context.artifacts["code"])).__name__
        model, predict = (importlib.import_module(f"{package}.{m}") for m in ("model", "predict"))
        self.refused = importlib.import_module(f"{package}.errors").PenguinInputError
        self.classify_frame = predict.classify_frame
        self.spec = json.loads(Path(context.artifacts["features"]).read_text())
        try:  # torch.jit.load for the network, torch.load(..., weights_only=True) for its weights
            self.model = model.load_model(context.artifacts["config"], context.artifacts["weights"])
        except self.refused as error:  # its files do not make a network: one line
            raise MlflowException(str(error)) from None

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            return self.classify_frame(self.model, model_input, self.spec)
        except self.refused as error:
            raise ModelInputError(str(error)) from None


set_model(PenguinClassifier())

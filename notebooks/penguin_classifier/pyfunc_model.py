"""The trained classifier as an MLflow pyfunc model: raw measurements in, species out.

Logged by :func:`registry.log_model` as MLflow's "models from code": MLflow stores this file
and runs it when the model is loaded (no pickled object), with this package as the model's code
and ``features.json`` (island vocabulary, scaling, feature order, species), ``config.json`` and
the weights as its artifacts. So ``mlflow.pyfunc.load_model(uri).predict(frame)`` works wherever
MLflow and torch are installed::

    Island  CulmenLength  CulmenDepth  FlipperLength  BodyMass      (mm, mm, mm, g; floats)
    Dream   50.4          15.3         200.0          5000.0
    →  species  probability_Adelie  probability_Gentoo  probability_Chinstrap
       Gentoo   0.0000              0.9800              0.0200

An unknown island, a missing or non-positive measurement raises PenguinInputError naming the row
and column: the model never guesses.
"""

# Absolute imports: MLflow runs this file as a script, with the package on sys.path.
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from penguin_classifier.errors import PenguinInputError
from penguin_classifier.layout import read_json
from penguin_classifier.model import load_model
from penguin_classifier.predict import classify_frame


class ModelInputError(PenguinInputError, MlflowException):
    """A value the model refuses: one line for ``penguins`` (a PenguinInputError) and, for a
    scoring server (MLflow's, Databricks serving), a 400 whose message names row and column:
    the server turns any other error into a generic one."""

    def __init__(self, message: str):
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


class PenguinClassifier(PythonModel):
    """Species and their probabilities for a DataFrame of raw measurements."""

    def load_context(self, context):
        self.spec = read_json(context.artifacts["features"])
        # load_model reads the weights with torch.load(..., weights_only=True).
        self.model = load_model(context.artifacts["config"], context.artifacts["weights"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            return classify_frame(self.model, model_input, self.spec)
        except PenguinInputError as error:
            raise ModelInputError(str(error)) from None


set_model(PenguinClassifier())

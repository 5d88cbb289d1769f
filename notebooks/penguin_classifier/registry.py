"""The classifier as an MLflow model: logged as a pyfunc on raw measurements, loaded, registered.

:func:`log_model` logs it into the active run (:mod:`pyfunc_model` is the model; the features
spec, the network, its weights and the package's code travel inside it). :func:`register` makes
it a new version of the registered model, in Unity Catalog on Databricks, and gives it the alias
``champion`` only when its held-out accuracy is good enough. Configure MLflow first
(:func:`tracking.configure` or :func:`tracking.reopen`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from packaging.version import Version

from .errors import PenguinInputError
from .jsonfile import read_json
from .lab import Lab
from .model import load_model, program_path
from .predict import Penguin, classify_frame, probability_column
from .tracking import MODEL_NAME

CHAMPION = "champion"
MIN_ACCURACY = 0.97

# MLflow 3 names a logged model with ``name``; 2.x with ``artifact_path`` (deprecated in 3).
MLFLOW_3 = Version(mlflow.__version__).major >= 3

# What MLflow says when a model is registered or logged but its files are not there.
FILES_GONE = ("No such artifact", 'Could not find an "MLmodel"')

# The lab's new penguin and a typical Adelie: the input example stored with the model.
EXAMPLE = pd.concat(
    [
        Penguin("Dream", 50.4, 15.3, 200.0, 5000.0).frame(),
        Penguin("Torgersen", 39.1, 18.7, 181.0, 3750.0).frame(),
    ],
    ignore_index=True,
)


# Model Serving builds an endpoint by pip-installing the model's requirements.txt. PyPI's Linux
# torch pulls in over 2 GB of CUDA libraries that a CPU endpoint never uses, which can keep the
# build past deploy's 30-minute wait; PyTorch's CPU index has each version without them
# (2.3.1+cpu). Databricks documents a workspace-wide package repository for Model Serving (an
# admin setting: https://docs.databricks.com/aws/en/machine-learning/model-serving/
# private-libraries-model-serving), not an index line in a model's requirements; this line is
# pip's own requirements-file syntax, which MLflow writes to requirements.txt and conda.yaml as
# given. So torch stays pinned to its version, not to the CPU build: ``torch==2.3.1`` matches
# 2.3.1+cpu, which pip prefers (a higher version), and where the index cannot be reached pip
# skips it ("Could not fetch URL ... - skipping") and installs PyPI's build of that version: the
# same model, a slower build.
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def requirements() -> list[str]:
    """What the model imports, at this environment's versions, and where a CPU torch is.

    Given, not inferred: MLflow infers them by loading the model in a subprocess (~10 s here).
    """
    versions = {"mlflow": mlflow.__version__, "torch": torch.__version__}
    versions |= {"pandas": pd.__version__, "numpy": np.__version__}
    pins = [f"{name}=={Version(v).base_version}" for name, v in versions.items()]
    return [CPU_TORCH_INDEX, *pins]


def log_model(lab: Lab, weights: str | Path | None = None, name: str = "model"):
    """Log the classifier as a pyfunc model into the active run; MLflow's ``ModelInfo``.

    ``info.model_uri`` loads it: ``mlflow.pyfunc.load_model(info.model_uri).predict(frame)``.
    ``weights``: the trained weights, default ``lab.weights`` (06_distribute passes its own).
    The model is :mod:`pyfunc_model` (MLflow's "models from code"); its artifacts are
    ``features.json``, ``config.json``, 03's ``network.pt``, the weights and a copy of this
    package as it is now (``code``), which the model imports under a name of its own when
    loaded: not MLflow's ``code_paths``, which an installed ``penguin_classifier`` shadows.
    """
    lab.require("prepared", "model")
    artifacts = {
        "features": str(lab.features),
        "config": str(lab.model_config),
        "network": str(program_path(lab.model_config)),
        "weights": str(weights or lab.weights),
    }
    model = load_model(artifacts["config"], artifacts["weights"])
    output = classify_frame(model, EXAMPLE, read_json(lab.features))
    package = Path(__file__).parent
    with tempfile.TemporaryDirectory(prefix="penguin-model-code-") as folder:
        code = Path(folder) / package.name  # the package's sources, no __pycache__
        shutil.copytree(package, code, ignore=shutil.ignore_patterns("__pycache__"))
        return mlflow.pyfunc.log_model(
            **({"name": name} if MLFLOW_3 else {"artifact_path": name}),
            python_model=str(package / "pyfunc_model.py"),
            artifacts={**artifacts, "code": str(code)},
            signature=infer_signature(EXAMPLE, output),
            input_example=EXAMPLE,
            pip_requirements=requirements(),
        )


def load_pyfunc(model_uri: str):
    """The pyfunc model and the features spec it carries; one line if it cannot be loaded."""
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as error:
        reason = error.message.splitlines()[0]
        if reason.startswith(FILES_GONE):
            reason = f"its files are gone from {artifact_location(model_uri)}"
        raise PenguinInputError(f"model {model_uri}: {reason}") from None
    except OSError as error:  # one of its files is missing or unreadable
        if error.filename is None:  # MLflow 2.13: the whole folder is gone, named in the message
            if not str(error).startswith("No such file or directory"):
                raise
            reason = f"its files are gone from {artifact_location(model_uri)}"
            raise PenguinInputError(f"model {model_uri}: {reason}") from None
        raise PenguinInputError(f"model {model_uri}: {error.strerror}: {error.filename}") from None
    return model, model.unwrap_python_model().spec


def artifact_location(model_uri: str) -> str:
    """Where the files of a ``models:/`` URI are (the artifact store, for any other URI)."""
    if not model_uri.startswith("models:/"):
        return "the artifact store"
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    return ModelsArtifactRepository.get_underlying_uri(model_uri)


def classify_with(model_uri: str, penguin: Penguin) -> tuple[str, dict[str, float]]:
    """``predict.predict``'s answer from a logged or registered model (configure MLflow first)."""
    model, spec = load_pyfunc(model_uri)
    try:
        row = model.predict(penguin.frame()).iloc[0]
    except MlflowException as error:  # the model's own ModelInputError, or MLflow's schema check
        if error.error_code != "INVALID_PARAMETER_VALUE":
            raise
        raise PenguinInputError(error.message) from None
    return row["species"], {s: float(row[probability_column(s)]) for s in spec["species"]}


@dataclass
class Registration:
    name: str
    version: str
    accuracy: float
    min_accuracy: float
    champion: bool  # whether this version got the alias
    previous_champion: str | None  # the version that had it before

    def record(self) -> dict:
        """05_evaluate's ``mlflow.json``: the version and its alias (null when it has none)."""
        alias = CHAMPION if self.champion else None
        return {"registered_model": self.name, "version": self.version, "alias": alias}

    def summary(self) -> str:
        figure = f"held-out accuracy {self.accuracy:.4f}"
        if self.champion:
            return f"{self.name} version {self.version} is {CHAMPION}: {figure}"
        kept = (
            f"{CHAMPION} stays on version {self.previous_champion}"
            if self.previous_champion
            else f"no version is {CHAMPION}"
        )
        return (
            f"{self.name} version {self.version} registered but NOT {CHAMPION}: {figure} "
            f"is below {self.min_accuracy}; {kept}"
        )


def register(
    model_uri: str, accuracy: float, name: str = MODEL_NAME, min_accuracy: float = MIN_ACCURACY
) -> Registration:
    """Register the model as a new version of ``name``; alias ``champion`` if good enough.

    ``name``: ``<catalog>.<schema>.penguin_classifier`` in Unity Catalog (registry
    ``databricks-uc``), ``penguin_classifier`` in a local registry. The version gets the alias
    only when ``accuracy`` (held-out) is at least ``min_accuracy``.
    """
    if mlflow.get_registry_uri().startswith("databricks-uc") and name.count(".") != 2:
        raise PenguinInputError(
            f"model name {name!r}: Unity Catalog needs <catalog>.<schema>.{MODEL_NAME}"
        )
    client = mlflow.MlflowClient()
    try:
        previous = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:  # no such model yet, or no champion
        previous = None
    version = mlflow.register_model(model_uri, name).version
    champion = accuracy >= min_accuracy
    if champion:
        client.set_registered_model_alias(name, CHAMPION, version)
    return Registration(name, str(version), accuracy, min_accuracy, champion, previous)

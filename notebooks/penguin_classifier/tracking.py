"""MLflow tracking for the lab: where runs go, what a stage logs, the model and its registration.

Where runs go (:func:`configure`):

* ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI``) when set: MLflow's own variables win
  (MLflow 3 also sets them when a URI is set, so a process tracks one lab folder);
* on Databricks: the workspace's tracking server (``databricks``) and Unity Catalog's registry
  (``databricks-uc``), into the experiment whose workspace path the bundle declares;
* locally: a SQLite store **next to** the lab folder, ``<lab_dir>/../mlruns/mlflow.db``, with the
  artifacts beside it in ``mlruns/artifacts/``. Not inside the lab folder: on Databricks that
  is a Unity Catalog volume, and SQLite needs random writes, in-place updates and locks that a
  volume does not offer; the local lab folder keeps the volume's rules.

A stage's run (:func:`start_run`) carries the tag ``job_run_id``: the Databricks job run
(``{{job.run_id}}``, passed by the bundle) or a local id, so all runs of one job run are found
together: ``mlflow.search_runs(filter_string="tags.job_run_id = '...'")``.

What each tracked stage found is committed with its own files, as ``mlflow.json`` in
``trained/`` (04: tracking URIs, experiment, run, model), ``evaluation/`` (05: registered
model, version, alias) and ``distributed/`` (06: its run and model). :func:`save_record` joins
them into ``metrics/mlflow.json``, the one file to read to find it all again.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from packaging.version import Version

from .errors import PenguinInputError
from .layout import STAGES, Lab, handover, read_json, write_json
from .model import load_model
from .predict import Penguin, classify_frame, probability_column
from .runtime import on_databricks

MODEL_NAME = "penguin_classifier"
CHAMPION = "champion"
MIN_ACCURACY = 0.97
JOB_RUN_TAG = "job_run_id"
MLFLOW_JSON = "mlflow.json"
# One id for every stage run in this process (``penguins run`` runs them all in one).
LOCAL_JOB_RUN_ID = f"local-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"

# MLflow 3 names a logged model with ``name``; 2.x with ``artifact_path`` (deprecated in 3).
MLFLOW_3 = Version(mlflow.__version__).major >= 3

# The lab's new penguin and a typical Adelie: the input example stored with the model.
EXAMPLE = pd.concat(
    [
        Penguin("Dream", 50.4, 15.3, 200.0, 5000.0).frame(),
        Penguin("Torgersen", 39.1, 18.7, 181.0, 3750.0).frame(),
    ],
    ignore_index=True,
)


@dataclass(frozen=True)
class Tracking:
    """Where runs and models go."""

    tracking_uri: str
    registry_uri: str
    experiment: str  # "" until a run says which (MLflow's default experiment)

    def record(self, run: mlflow.ActiveRun, **fields) -> dict:
        """04_train's ``mlflow.json``: these locations, the run's experiment and ``fields``."""
        experiment = mlflow.get_experiment(run.info.experiment_id).name
        job_run_id = run.data.tags.get(JOB_RUN_TAG)
        return {**asdict(self), "experiment": experiment, "job_run_id": job_run_id, **fields}


def local_store(lab: Lab) -> Path:
    """``mlruns/`` next to the lab folder, on local disk (never inside it: see above)."""
    return lab.root.resolve().parent / "mlruns"


def locations(lab: Lab) -> tuple[str, str]:
    """``(tracking_uri, registry_uri)``: MLflow's variables, else Databricks', else local."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
        return tracking_uri, os.environ.get("MLFLOW_REGISTRY_URI", tracking_uri)
    if on_databricks():
        return "databricks", "databricks-uc"
    database = f"sqlite:///{local_store(lab) / 'mlflow.db'}"
    return database, database


def configure(lab: Lab, experiment: str | None = MODEL_NAME) -> Tracking:
    """Point MLflow at the tracking server, the registry and ``experiment``; return them.

    ``experiment``: a workspace path on Databricks (``/Workspace/Users/.../penguin_classifier``,
    the bundle's experiment), a name elsewhere; ``""`` for the default: the notebook's own
    experiment on Databricks, ``penguin_classifier`` elsewhere; ``None`` to only load models.
    """
    tracking_uri, registry_uri = locations(lab)
    if experiment == "" and not tracking_uri.startswith("databricks"):
        experiment = MODEL_NAME
    if experiment and tracking_uri.startswith("databricks") and not experiment.startswith("/"):
        raise PenguinInputError(
            f"experiment {experiment!r}: on Databricks an experiment is a workspace path, "
            "e.g. /Workspace/Users/<you>/penguin_classifier (the bundle passes it)"
        )
    database = None
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    if experiment:
        if database and not mlflow.get_experiment_by_name(experiment):
            # Artifacts beside the database, not in MLflow's default: ./mlruns of the cwd.
            artifacts = (database.parent / "artifacts").as_uri()
            mlflow.create_experiment(experiment, artifact_location=artifacts)
        mlflow.set_experiment(experiment)
    return Tracking(tracking_uri, registry_uri, experiment or "")


def start_run(stage: str, job_run_id: str = "", run_id: str | None = None) -> mlflow.ActiveRun:
    """A run named after ``stage``, tagged with the job run; or ``run_id``'s run, resumed.

    Use as ``with start_run("04_train", job_run_id) as run:``; ``run.info.run_id``.
    """
    if run_id:
        return mlflow.start_run(run_id=run_id)
    tags = {JOB_RUN_TAG: job_run_id or LOCAL_JOB_RUN_ID, "stage": stage}
    return mlflow.start_run(run_name=stage, tags=tags)


def lab_parameters(lab: Lab) -> dict:
    """What earlier stages chose: the split and oversampling (02), the network (03)."""
    features, config = read_json(lab.features), read_json(lab.model_config)
    return {
        "oversample": features["oversample"],
        "test_fraction": features["test_fraction"],
        "split_seed": features["seed"],
        "hidden": config["hidden"],
        "init_seed": config["seed"],
    }


def log_training(lab: Lab, parameters: dict, history: list) -> None:
    """Parameters, per-epoch metrics (``step=epoch``) and ``features.json`` into the active run.

    ``parameters``: the stage's own (epochs, lr, batch_size, device; 06 adds backend and
    processes), logged with :func:`lab_parameters`. ``history``: ``train.Epoch`` objects or
    ``history.json``'s dicts (``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``; the
    ones present), or nothing.
    """
    mlflow.log_params({**lab_parameters(lab), **parameters})
    now = int(time.time() * 1000)
    metrics = []
    for epoch in history:
        row = epoch if isinstance(epoch, dict) else epoch.to_dict()
        for key in ("train_loss", "val_loss", "val_accuracy"):
            if key in row:
                metrics.append(Metric(key, float(row[key]), now, row["epoch"]))
    if metrics:
        # One call (MLflow splits it into batches of 1000): 100 epochs are 300 values.
        mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=metrics)
    mlflow.log_artifact(str(lab.features))


def held_out_figures(evaluation: dict) -> dict[str, float]:
    """``test_accuracy``, ``test_loss`` and ``test_<precision|recall|f1>_<species>``."""
    metrics = {f"test_{key}": float(evaluation[key]) for key in ("accuracy", "loss")}
    for species, figures in evaluation.get("per_species", {}).items():
        for key in ("precision", "recall", "f1"):
            if key in figures:
                metrics[f"test_{key}_{species}"] = float(figures[key])
    return metrics


def log_evaluation(lab: Lab, folder: Path) -> dict[str, float]:
    """05_evaluate's held-out metrics and files (plots, ``evaluation.json``) into the active run.

    ``folder``: where 05 built them (its hand-over's local folder, before the commit).
    """
    names = (lab.evaluation.name, lab.loss_plot.name, lab.confusion_plot.name)
    metrics = held_out_figures(read_json(folder / lab.evaluation.name))
    mlflow.log_metrics(metrics)
    for path in (folder / name for name in names):
        if path.exists():
            mlflow.log_artifact(str(path), "evaluation")
    return metrics


def reopen(record: dict) -> None:
    """Point MLflow where an earlier stage's ``mlflow.json`` says its run and model are."""
    mlflow.set_tracking_uri(record["tracking_uri"])
    mlflow.set_registry_uri(record["registry_uri"])


# The fields of ``metrics/mlflow.json``, in order; those no stage has filled yet are null.
RECORD_FIELDS = (
    "tracking_uri", "registry_uri", "experiment", "job_run_id", "train_run_id", "model_uri",
    "registered_model", "version", "alias", "distribute_run_id", "distributed_model_uri",
)  # fmt: skip
# The folders with an ``mlflow.json``, in job order.
TRACKED = ("trained", "evaluation", "distributed")


def save_record(lab: Lab, folder: str) -> dict:
    """Commit ``metrics/mlflow.json``: the ``mlflow.json`` of ``folder`` and the tracked folders
    before it, joined. So a rerun of 04_train drops the registration of the model it replaced.
    """
    record = dict.fromkeys(RECORD_FIELDS)
    for name in TRACKED[: TRACKED.index(folder) + 1]:
        lab.require(name)
        record.update(read_json(lab.folder(name) / MLFLOW_JSON))
    with handover(lab.folder("metrics"), STAGES[folder]) as out:
        write_json(out / MLFLOW_JSON, record)
    return record


def requirements() -> list[str]:
    """What the model imports, at this environment's versions.

    Given, not inferred: MLflow infers them by loading the model in a subprocess (~10 s here).
    """
    versions = {"mlflow": mlflow.__version__, "torch": torch.__version__}
    versions |= {"pandas": pd.__version__, "numpy": np.__version__}
    return [f"{name}=={Version(v).base_version}" for name, v in versions.items()]


def log_model(lab: Lab, weights: str | Path | None = None, name: str = "model"):
    """Log the classifier as a pyfunc model into the active run; MLflow's ``ModelInfo``.

    ``info.model_uri`` loads it: ``mlflow.pyfunc.load_model(info.model_uri).predict(frame)``.
    ``weights``: the trained weights, default ``lab.weights`` (06_distribute passes its own).
    The model is :mod:`pyfunc_model` (MLflow's "models from code"), with this package as its
    code and ``features.json``, ``config.json`` and the weights as its artifacts.
    """
    lab.require("prepared", "model")
    artifacts = {
        "features": str(lab.features),
        "config": str(lab.model_config),
        "weights": str(weights or lab.weights),
    }
    model = load_model(artifacts["config"], artifacts["weights"])
    output = classify_frame(model, EXAMPLE, read_json(lab.features))
    package = Path(__file__).parent
    return mlflow.pyfunc.log_model(
        **({"name": name} if MLFLOW_3 else {"artifact_path": name}),
        python_model=str(package / "pyfunc_model.py"),
        code_paths=[str(package)],
        artifacts=artifacts,
        signature=infer_signature(EXAMPLE, output),
        input_example=EXAMPLE,
        pip_requirements=requirements(),
    )


def load_pyfunc(model_uri: str):
    """The pyfunc model and the features spec it carries; one line if it cannot be loaded."""
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as error:
        raise PenguinInputError(f"model {model_uri}: {error.message.splitlines()[0]}") from None
    return model, model.unwrap_python_model().spec


def classify_with(model_uri: str, penguin: Penguin) -> tuple[str, dict[str, float]]:
    """``predict.predict``'s answer from a logged or registered model (configure MLflow first)."""
    model, spec = load_pyfunc(model_uri)
    row = model.predict(penguin.frame()).iloc[0]
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

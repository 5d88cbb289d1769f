"""MLflow tracking for the lab: where runs go, what a stage logs, where to find it all again.

The model itself (logging it, loading it, registering it) is :mod:`registry`.

Where runs go (:func:`configure`):

* ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI``) when set: MLflow's own variables win
  (MLflow 3 also sets them when a URI is set, so a process tracks one lab folder);
* on Databricks: the workspace's tracking server (``databricks``) and Unity Catalog's registry
  (``databricks-uc``; ``MLFLOW_REGISTRY_URI`` only, never the tracking URI, overrides it), into
  the experiment whose workspace path the bundle declares;
* locally: a SQLite store **next to** the lab folder, ``<lab_dir>/../mlruns/mlflow.db``, with the
  artifacts beside it in ``mlruns/artifacts/``. Not inside the lab folder: on Databricks that
  is a Unity Catalog volume, and SQLite needs random writes, in-place updates and locks that a
  volume does not offer; the local lab folder keeps the volume's rules. A lab folder copied or
  moved away from its store does not write into the original's: :func:`reopen` refuses a
  record naming another store, :func:`configure` a store whose experiment keeps its artifacts
  elsewhere.

A stage's run (:func:`start_run`) carries the tag ``job_run_id``: the Databricks job run
(``{{job.run_id}}``, passed by the bundle) or a local id, so all runs of one job run are found
together: ``mlflow.search_runs(filter_string="tags.job_run_id = '...'")``.

What each tracked stage found is committed with its own files, as ``mlflow.json`` in
``trained/`` (04: tracking URIs, experiment, run, model), ``evaluation/`` (05: registered
model, version, alias) and ``distributed/`` (06: its run and model). :func:`recorded` reads
them together, to find it all again.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from .errors import PenguinInputError
from .jsonfile import read_json
from .lab import Lab
from .records import STAGES
from .runtime import local_run_id, on_databricks

MODEL_NAME = "penguin_classifier"
JOB_RUN_TAG = "job_run_id"
MLFLOW_JSON = "mlflow.json"
# The tag of a notebook run outside a job (empty job_run_id): one id per process.
LOCAL_JOB_RUN_ID = local_run_id()


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
    """``(tracking_uri, registry_uri)``: MLflow's variables where set, else Databricks', else
    the local store.

    On Databricks the registry is never taken from ``MLFLOW_TRACKING_URI`` (``databricks``, the
    workspace registry): MLflow 2.21+ exports that variable once ``set_tracking_uri`` ran, so a
    notebook's second run in a session would register outside Unity Catalog.
    """
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI")
    if on_databricks():
        return tracking_uri or "databricks", registry_uri or "databricks-uc"
    if tracking_uri:
        return tracking_uri, registry_uri or tracking_uri
    database = f"sqlite:///{local_store(lab) / 'mlflow.db'}"
    return database, database


def configure(lab: Lab, experiment: str | None = MODEL_NAME) -> Tracking:
    """Point MLflow at the tracking server, the registry and ``experiment``; return them.

    ``experiment``: a workspace path on Databricks (``/Workspace/Users/.../penguin_classifier``,
    the bundle's experiment), a name elsewhere; ``""`` for the default: the notebook's own
    experiment on Databricks, ``penguin_classifier`` elsewhere; ``None`` to only load models
    (from a local store that exists: none is created then).
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
        if experiment is None and not database.is_file():  # loading models creates no store
            raise PenguinInputError(f"no MLflow store at {database}: run penguins run first")
        database.parent.mkdir(parents=True, exist_ok=True)
        open_store(tracking_uri, database)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    if experiment:
        found = mlflow.get_experiment_by_name(experiment) if database else None
        if database and not found:
            # Artifacts beside the database, not in MLflow's default: ./mlruns of the cwd.
            artifacts = (database.parent / "artifacts").as_uri()
            mlflow.create_experiment(experiment, artifact_location=artifacts)
        elif found and database.parent == local_store(lab) and not beside(found, database):
            # A store copied or moved with its lab keeps the original's artifact folder.
            raise PenguinInputError(
                f"MLflow store {database}: experiment {experiment} keeps its artifacts in "
                f"{found.artifact_location}, outside {database.parent} (was the store copied or "
                f"moved?): move {database.parent} away to start a new store"
            )
        mlflow.set_experiment(experiment)
    return Tracking(tracking_uri, registry_uri, experiment or "")


def beside(experiment, database: Path) -> bool:
    """Whether ``experiment`` keeps its artifacts in ``database``'s folder (or not on this
    machine's disk)."""
    location = urlparse(experiment.artifact_location)
    if location.scheme not in ("", "file"):
        return True
    return Path(url2pathname(location.path)).resolve().is_relative_to(database.parent.resolve())


def open_store(tracking_uri: str, database: Path) -> None:
    """Open (or create) the SQLite store; one line naming it if it is not a usable store."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        mlflow.MlflowClient(tracking_uri)
    except (SQLAlchemyError, MlflowException) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise PenguinInputError(f"MLflow store {database} is unreadable: {reason}") from None


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


def reopen(lab: Lab, folder: str) -> dict:
    """Point MLflow where ``<folder>/mlflow.json`` (an earlier stage's) says its runs and model
    are; return that record.

    Its store must be the one this lab's runs go to now (:func:`locations`): a lab folder copied
    or moved away from its ``mlruns/`` still names the original's, and logging or registering
    there would change another lab's runs and models. Such a record is refused in one line;
    Databricks' own URIs (``databricks``, ``databricks-uc``) are the workspace's, kept as they
    are.
    """
    path = lab.folder(folder) / MLFLOW_JSON
    again = f"run {STAGES[folder]} again"
    try:
        record = read_json(path)
    except (ValueError, RecursionError):
        record = None
    uris = (
        [record.get(key) for key in ("tracking_uri", "registry_uri")]
        if isinstance(record, dict)
        else [None]
    )
    if not all(isinstance(uri, str) for uri in uris):
        raise PenguinInputError(f"{path} is not an MLflow record of this project: {again}")
    for uri, expected in zip(uris, locations(lab), strict=True):
        if uri != expected and not uri.startswith("databricks"):
            raise PenguinInputError(
                f"{path} names the MLflow store {uri}; this lab's runs go to {expected} "
                f"(was the lab folder copied or moved?): {again}"
            )
    mlflow.set_tracking_uri(uris[0])
    mlflow.set_registry_uri(uris[1])
    return record


# The folders with an ``mlflow.json``, in job order: each is built from the one before it.
TRACKED = ("trained", "evaluation", "distributed")


def recorded(lab: Lab) -> dict:
    """The ``mlflow.json`` of the tracked folders, joined: those committed and current, in job
    order up to the first that is not (05's registration is of an earlier model once 04_train
    ran again, so it is left out); ``{}`` when 04_train's is not. One that is not a JSON object
    ends the join as a stale one does.
    """
    record = {}
    for name in TRACKED:
        try:
            lab.require(name)
            found = read_json(lab.folder(name) / MLFLOW_JSON)
        except (OSError, ValueError, RecursionError):  # PenguinInputError is a ValueError
            break
        if not isinstance(found, dict):
            break
        record |= found
    return record

"""databricks.yml: the official schema, the checks the CLI adds, and the local run following it."""

from __future__ import annotations

import copy
import shutil

import pytest
from penguin_classifier.bundle import job_tasks, load_bundle, ordered_tasks, variable_values
from penguin_classifier.bundle_checks import check_bundle, load_schema, schema_problems
from penguin_classifier.cli import main
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.jobs import local_tasks
from penguin_classifier.runtime import project_root, shipped_data

ROOT = project_root()
SCHEMA = ROOT.parent / "shared" / "databricks-bundle-schema.json"
STAGES = ["ingest", "prepare", "model", "train", "evaluate", "distribute"]


@pytest.fixture(scope="module")
def config():
    return load_bundle()


@pytest.fixture(scope="module")
def schema():
    if not SCHEMA.is_file():
        pytest.skip(f"bundle JSON schema not found at {SCHEMA} (it ships beside the repo in CI)")
    return load_schema(SCHEMA)


def task(config, key):
    return next(
        t for t in config["resources"]["jobs"]["penguin_training"]["tasks"] if t["task_key"] == key
    )


# --- the official JSON schema ----------------------------------------------------------------


def test_bundle_matches_the_official_schema(config, schema):
    assert schema_problems(config, schema) == []


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda c: task(c, "ingest").update(notebook_tsk=task(c, "ingest").pop("notebook_task")),
            "resources.jobs.penguin_training.tasks.0: Additional properties are not allowed "
            "('notebook_tsk' was unexpected)",
        ),
        (
            lambda c: c["resources"]["clusters"]["lab_cluster"].update(num_workers="two"),
            "resources.clusters.lab_cluster.num_workers: 'two' is not of type 'integer'",
        ),
        (
            lambda c: c["targets"]["prod"].update(root_path="/Shared/x"),
            "targets.prod: Additional properties are not allowed ('root_path' was unexpected)",
        ),
    ],
    ids=["misspelt key", "wrong type", "key at the wrong level"],
)
def test_schema_rejects_a_broken_copy(config, schema, break_it, message):
    broken = copy.deepcopy(config)
    break_it(broken)
    assert message in schema_problems(broken, schema)


# --- the checks the CLI adds -----------------------------------------------------------------


def test_bundle_passes_the_consistency_checks(config):
    assert check_bundle(config, ROOT) == []


def job_cluster(c):
    return c["resources"]["jobs"]["penguin_training"]["job_clusters"][0]["new_cluster"]


BROKEN = [
    (
        lambda c: job_cluster(c)["spark_conf"].pop("spark.master"),
        "resources.jobs.penguin_training.job_clusters[0].new_cluster: spark_conf spark.master "
        "must be local[*]",
    ),
    (
        lambda c: c["resources"]["clusters"]["lab_cluster"].update(num_workers=2),
        "resources.clusters.lab_cluster: num_workers must be 0",
    ),
    (
        lambda c: c["resources"]["clusters"]["lab_cluster"]["custom_tags"].clear(),
        "resources.clusters.lab_cluster: custom_tags ResourceClass: SingleNode",
    ),
    (
        lambda c: job_cluster(c).update(runtime_engine="PHOTON"),
        "runtime_engine: STANDARD (no Photon)",
    ),
    (
        lambda c: c["variables"]["spark_version"].update(default="15.4.x-gpu-ml-scala2.12"),
        "spark_version 15.4.x-gpu-ml-scala2.12 is a GPU runtime",
    ),
    (
        lambda c: c["variables"]["spark_version"].update(default="15.4.x-scala2.12"),
        "spark_version 15.4.x-scala2.12 is not an ML runtime",
    ),
    (
        lambda c: task(c, "train")["notebook_task"].update(notebook_path="./notebooks/04_trian.py"),
        "penguin_training.tasks.train: notebook ./notebooks/04_trian.py not found",
    ),
    (
        lambda c: task(c, "model").update(depends_on=[{"task_key": "ingestion"}]),
        "penguin_training.tasks.model: depends_on unknown task 'ingestion'",
    ),
    (
        lambda c: task(c, "evaluate").update(depends_on=[{"task_key": "model"}]),
        "penguin_training.tasks.evaluate: must depend on 'train' only, not ['model']",
    ),
    (
        lambda c: task(c, "train")["notebook_task"]["base_parameters"].update(epoch="5"),
        "penguin_training.tasks.train: base_parameters 'epoch' is not a widget of 04_train.py",
    ),
    (
        lambda c: task(c, "ingest")["notebook_task"]["base_parameters"].pop("lab_dir"),
        "penguin_training.tasks.ingest: widget 'lab_dir' of 01_ingest.py has no safe default; "
        "set it in base_parameters",
    ),
    (
        lambda c: task(c, "distribute")["notebook_task"]["base_parameters"].update(
            backend="${var.backend}"
        ),
        "resources.jobs.penguin_training.tasks[5].notebook_task.base_parameters.backend: "
        "${var.backend} is not a declared variable",
    ),
    (
        lambda c: c["resources"]["jobs"]["penguin_training"]["tasks"].pop(),
        "penguin_training: tasks must be ingest -> prepare -> model -> train -> evaluate -> "
        "distribute, found ingest -> prepare -> model -> train -> evaluate",
    ),
]


@pytest.mark.parametrize(("break_it", "message"), BROKEN)
def test_consistency_check_rejects_a_broken_copy(config, break_it, message):
    broken = copy.deepcopy(config)
    break_it(broken)
    problems = check_bundle(broken, ROOT)
    assert any(message in p for p in problems), problems


def test_a_notebook_without_the_databricks_header_is_rejected(config, tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    path = tmp_path / "notebooks" / "03_model.py"
    path.write_text(path.read_text().replace("# Databricks notebook source\n", "", 1))
    assert check_bundle(config, tmp_path) == [
        "penguin_training.tasks.model: 03_model.py does not start with "
        "'# Databricks notebook source'"
    ]


def test_validate_command(tmp_path, capsys):
    assert main(["validate"]) == 0
    broken = tmp_path / "databricks.yml"
    broken.write_text(
        (ROOT / "databricks.yml").read_text().replace("num_workers: 0", "num_workers: 1", 1)
    )
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    assert main(["validate", "--bundle", str(broken)]) == 1
    assert "resources.clusters.lab_cluster: num_workers must be 0" in capsys.readouterr().out


# --- the local run follows the bundle ------------------------------------------------------------


def test_local_run_uses_the_bundles_tasks_order_and_parameters(config):
    deployed = job_tasks(config, {}, "dev")
    local = local_tasks()
    assert [t.key for t in local] == [t.key for t in deployed] == STAGES
    assert [t.notebook.name for t in local] == [f"0{i}_{k}.py" for i, k in enumerate(STAGES, 1)]
    # Only the two local variables differ from the deployed job's parameters.
    assert deployed[0].params["lab_dir"] == "/Volumes/main/default/deepml_lab"
    assert deployed[0].params["source"].startswith("https://raw.githubusercontent.com/")
    for d, lo in zip(deployed, local, strict=True):
        expected = {**d.params, "lab_dir": "lab"}
        if "source" in expected:
            expected["source"] = str(shipped_data())
        assert lo.params == expected
    assert local[3].params == {"lab_dir": "lab", "epochs": "100", "lr": "0.001", "batch_size": "20"}


def test_variables_resolve_with_overrides(config):
    values = variable_values(config, {"catalog": "training", "distribute_backend": "torch"}, "dev")
    assert values["lab_dir"] == "/Volumes/training/default/deepml_lab"
    tasks = local_tasks({"distribute_backend": "torch", "lab_dir": "/tmp/x"})
    assert tasks[-1].params["backend"] == "torch"
    assert {t.params["lab_dir"] for t in tasks} == {"/tmp/x"}
    with pytest.raises(
        PenguinInputError, match="--var catalogue: not a variable of databricks.yml"
    ):
        variable_values(config, {"catalogue": "x"}, "dev")
    with pytest.raises(PenguinInputError, match="--target 'staging': not a target"):
        job_tasks(config, {}, "staging")


def test_task_order_comes_from_depends_on():
    tasks = [
        {"task_key": "c", "depends_on": [{"task_key": "b"}]},
        {"task_key": "a"},
        {"task_key": "b", "depends_on": [{"task_key": "a"}]},
    ]
    assert [t["task_key"] for t in ordered_tasks(tasks)] == ["a", "b", "c"]
    tasks[1]["depends_on"] = [{"task_key": "c"}]
    with pytest.raises(PenguinInputError, match="cycle"):
        ordered_tasks(tasks)


def test_run_with_an_unknown_variable_is_one_line_and_exit_2(capsys):
    assert main(["run", "--var", "catalogue=x"]) == 2
    assert capsys.readouterr().err.startswith(
        "penguins run: --var catalogue: not a variable of databricks.yml"
    )

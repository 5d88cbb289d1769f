"""databricks.yml: the official schema, the checks the CLI adds, every target as the CLI merges it,
and the local run following the bundle."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile

import pytest
import yaml
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.runtime import project_root, shipped_data

from penguins.bundle import (
    job_tasks,
    load_bundle,
    ordered_tasks,
    target_config,
    variable_values,
)
from penguins.bundle_checks import (
    EXAMPLE_USERS,
    check_bundle,
    load_schema,
    schema_problems,
)
from penguins.cli import main
from penguins.jobs import local_tasks

ROOT = project_root()
SCHEMA = ROOT.parent / "shared" / "databricks-bundle-schema.json"
STAGES = ["ingest", "prepare", "model", "train", "evaluate", "distribute"]
TASKS = [*STAGES, "serve"]  # serve: the champion behind an endpoint, beside distribute
ADA = EXAMPLE_USERS[0]  # ada@example.com, short name "ada"


@pytest.fixture(scope="module")
def config():
    return load_bundle()


@pytest.fixture(scope="module")
def schema():
    if not SCHEMA.is_file():
        pytest.skip(f"bundle JSON schema not found at {SCHEMA} (it ships beside the repo in CI)")
    return load_schema(SCHEMA)


def job(c):
    return c["resources"]["jobs"]["penguin_training"]


def scoring(c):
    return c["resources"]["jobs"]["penguin_scoring"]


def task(c, key):
    return next(t for t in job(c)["tasks"] if t["task_key"] == key)


def target(c, name):
    return c["targets"][name]


def lab_cluster(c):
    return target(c, "dev")["resources"]["clusters"]["lab_cluster"]


def single_node(c):
    return c["variables"]["single_node"]["default"]


def scale_job(c):
    return target(c, "scale")["resources"]["jobs"]["penguin_training"]


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
            lambda c: lab_cluster(c).update(num_workers="two"),
            "targets.dev.resources.clusters.lab_cluster.num_workers: 'two' is not of type "
            "'integer'",
        ),
        (
            lambda c: target(c, "prod").update(root_path="/Shared/x"),
            "targets.prod: Additional properties are not allowed ('root_path' was unexpected)",
        ),
        (
            lambda c: target(c, "prod")["permissions"].append({"level": "CAN_MANAGE", "user": "x"}),
            "targets.prod.permissions.2: Additional properties are not allowed ('user' was "
            "unexpected)",
        ),
        (
            lambda c: c["artifacts"]["penguin_classifier"].update(build_command="make wheel"),
            "artifacts.penguin_classifier: Additional properties are not allowed "
            "('build_command' was unexpected)",
        ),
        (
            lambda c: task(c, "train").update(libraries=[{"wheel": "../dist/*.whl"}]),
            "resources.jobs.penguin_training.tasks.3.libraries.0: Additional properties are not "
            "allowed ('wheel' was unexpected)",
        ),
        (
            lambda c: task(c, "train").update(libraries={"whl": "../dist/*.whl"}),
            "resources.jobs.penguin_training.tasks.3.libraries: {'whl': '../dist/*.whl'} is not "
            "of type 'array'",
        ),
        (
            lambda c: scoring(c)["job_clusters"][0].update(new_cluster="${single_node}"),
            "resources.jobs.penguin_scoring.job_clusters.0.new_cluster: '${single_node}' is not "
            "of type 'object'",
        ),
    ],
    ids=[
        "misspelt key",
        "wrong type",
        "key at the wrong level",
        "target permissions",
        "artifact key",
        "library type",
        "libraries not a list",
        "cluster not a variable",
    ],
)
def test_schema_rejects_a_broken_copy(config, schema, break_it, message):
    broken = copy.deepcopy(config)
    break_it(broken)
    assert message in schema_problems(broken, schema)


# --- every target, merged as the CLI merges it ---------------------------------------------------


def test_the_single_node_spec_is_written_once_and_shared(config):
    # A complex variable `single_node: default: &single_node`, which both job files use as
    # `new_cluster: ${var.single_node}`; `<<: *single_node` in dev's interactive cluster.
    files = [ROOT / "databricks.yml", *sorted((ROOT / "resources").glob("*.yml"))]
    assert sum(f.read_text().count("spark.databricks.cluster.profile") for f in files) == 1
    assert config["variables"]["single_node"]["type"] == "complex"
    shared = {k: v for k, v in lab_cluster(config).items() if k in single_node(config)}
    assert shared == single_node(config)
    # Loaded as separate values, so changing one (in a broken copy) leaves the other alone.
    assert lab_cluster(config)["spark_conf"] is not single_node(config)["spark_conf"]
    # Each target's jobs get the variable's value, as the CLI substitutes a complex variable.
    for name in ("dev", "scale", "prod"):
        merged = target_config(config, name)
        for spec in merged["resources"]["jobs"].values():
            assert spec["job_clusters"][0]["new_cluster"] == single_node(config)


def test_targets_merge_as_the_cli_merges_them(config):
    dev, prod, scale = (target_config(config, t) for t in ("dev", "prod", "scale"))
    # The interactive cluster is dev's only.
    assert list(dev["resources"]["clusters"]) == ["lab_cluster"]
    assert "clusters" not in prod["resources"] and "clusters" not in scale["resources"]
    # scale adds a job cluster (merged by job_cluster_key) and moves one task onto it (merged by
    # task_key): its base_parameters are the base's plus scale's.
    assert [c["job_cluster_key"] for c in job(scale)["job_clusters"]] == ["single_node", "workers"]
    assert job(scale)["job_clusters"][1]["new_cluster"]["num_workers"] == "${var.num_workers}"
    assert [t["task_key"] for t in job(scale)["tasks"]] == TASKS
    assert task(scale, "distribute")["job_cluster_key"] == "workers"
    assert task(scale, "distribute")["notebook_task"]["base_parameters"] == {
        "backend": "${var.distribute_backend}",
        "local_mode": "false",
        "num_processes": "${var.num_workers}",
    }
    assert task(scale, "distribute")["libraries"] == [{"whl": "dist/*.whl"}]  # kept
    assert task(scale, "distribute")["depends_on"] == [{"task_key": "evaluate"}]
    # prod: its own root, run_as and permissions; its variable default replaces the base one.
    assert prod["bundle"]["mode"] == "production"
    assert prod["run_as"] == {"user_name": "${workspace.current_user.userName}"}
    assert [p["level"] for p in prod["permissions"]] == ["CAN_MANAGE", "CAN_VIEW"]
    assert prod["variables"]["volume"]["default"] == "deepml_lab_prod"
    assert dev["variables"]["volume"]["default"].startswith("deepml_lab_${bundle.target}_")
    # Development mode prefixes names as the CLI's ApplyPresets does; volumes keep theirs.
    user = "${workspace.current_user.short_name}"
    assert job(dev)["name"] == f"[dev {user}] penguin-training-${{bundle.target}}"
    assert dev["resources"]["registered_models"]["penguin_classifier"]["name"] == (
        f"dev_{user}_penguin_classifier"
    )
    experiment = dev["resources"]["experiments"]["penguin_classifier"]["name"]
    assert experiment.endswith(f"/[dev {user}] ${{bundle.name}}-${{bundle.target}}")
    assert prod["resources"]["registered_models"]["penguin_classifier"]["name"] == (
        "penguin_classifier"
    )
    assert (
        dev["resources"]["volumes"]
        == prod["resources"]["volumes"]
        == config["resources"]["volumes"]
    )
    # The loaded file itself is untouched.
    assert len(job(config)["job_clusters"]) == 1
    assert job(config)["name"] == "penguin-training-${bundle.target}"


def test_each_target_and_user_has_its_own_volume_and_lab_dir_is_its_path(config):
    def lab_dir(target, user):
        return job_tasks(config, {}, {}, target, known=user)[0].params["lab_dir"]

    grace = EXAMPLE_USERS[1]
    assert lab_dir("dev", ADA) == "/Volumes/main/default/deepml_lab_dev_ada"
    assert lab_dir("dev", grace) == "/Volumes/main/default/deepml_lab_dev_grace"
    assert lab_dir("scale", ADA) == "/Volumes/main/default/deepml_lab_scale_ada"
    assert lab_dir("prod", ADA) == lab_dir("prod", grace) == "/Volumes/main/default/deepml_lab_prod"
    # lab_dir follows the volume's own fields: a catalog set once moves both.
    tasks = job_tasks(config, {"catalog": "training"}, {}, "prod", known=ADA)
    assert tasks[0].params["lab_dir"] == "/Volumes/training/default/deepml_lab_prod"


def test_jobs_get_the_deployed_experiment_and_model_names(config):
    def params(target, job="penguin_training", variables=None):
        return job_tasks(config, variables or {}, {}, target, job, known=ADA)[0].params

    # Development mode: "[dev ada] " before the experiment's last part, dev_ada_ before the
    # model's name; the Unity Catalog name has three parts, catalog.schema.name.
    assert params("dev")["experiment"] == "/Users/ada@example.com/[dev ada] penguin_classifier-dev"
    assert params("dev")["model_name"] == "main.default.dev_ada_penguin_classifier"
    assert params("scale")["model_name"] == "main.default.dev_ada_penguin_classifier_scale"
    assert params("dev")["job_run_id"] == "{{job.run_id}}"  # filled in by Databricks
    assert params("prod")["experiment"] == "/Users/ada@example.com/penguin_classifier-prod"
    assert params("prod")["model_name"] == "main.default.penguin_classifier"
    # Scoring uses the champion of the same model; a catalog set once moves both.
    assert params("dev", "penguin_scoring")["model"] == (
        "models:/main.default.dev_ada_penguin_classifier@champion"
    )
    assert params("prod", "penguin_scoring", {"catalog": "ml"})["model"] == (
        "models:/ml.default.penguin_classifier@champion"
    )
    assert params("prod", "penguin_scoring")["lab_dir"] == params("prod")["lab_dir"]


# --- the checks the CLI adds, on every target ------------------------------------------------


def test_bundle_passes_the_consistency_checks(config):
    assert check_bundle(config, ROOT) == []


ALL = "[dev, scale, prod] "
BROKEN = [
    (
        lambda c: single_node(c)["spark_conf"].pop("spark.master"),
        ALL + "resources.jobs.penguin_training.job_clusters[0].new_cluster: a single node "
        "(num_workers 0) needs spark_conf spark.master: local[*]",
    ),
    (
        lambda c: lab_cluster(c)["custom_tags"].clear(),
        "[dev] resources.clusters.lab_cluster: a single node (num_workers 0) needs custom_tags "
        "ResourceClass: SingleNode",
    ),
    (
        lambda c: lab_cluster(c).update(num_workers=2),
        "[dev] resources.clusters.lab_cluster: num_workers 2, yet single-node spark_conf "
        "spark.databricks.cluster.profile: singleNode",
    ),
    (
        lambda c: scale_job(c)["job_clusters"][0]["new_cluster"].update(
            custom_tags={"ResourceClass": "SingleNode"}
        ),
        "[scale] resources.jobs.penguin_training.job_clusters[1].new_cluster: num_workers 2, yet "
        "single-node custom_tags ResourceClass: SingleNode",
    ),
    (
        lambda c: target(c, "scale").update(variables={"num_workers": "two"}),
        "[scale] resources.jobs.penguin_training.job_clusters[1].new_cluster: num_workers 'two' "
        "is not a whole number",
    ),
    (
        lambda c: scale_job(c)["tasks"][0]["notebook_task"]["base_parameters"].pop("local_mode"),
        "[scale] penguin_training.tasks.distribute: runs on a cluster with 2 workers but not on "
        'them; set base_parameters local_mode: "false"',
    ),
    (
        lambda c: single_node(c).update(runtime_engine="PHOTON"),
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
        ALL + "penguin_training.tasks.train: notebook ./notebooks/04_trian.py not found",
    ),
    (
        lambda c: task(c, "model").update(depends_on=[{"task_key": "ingestion"}]),
        "penguin_training.tasks.model: depends_on unknown task 'ingestion'",
    ),
    (
        lambda c: task(c, "evaluate").update(depends_on=[{"task_key": "model"}]),
        "penguin_training.tasks.evaluate: must depend on ['train'] only, not ['model']",
    ),
    (
        lambda c: task(c, "serve").update(depends_on=[{"task_key": "distribute"}]),
        "penguin_training.tasks.serve: must depend on ['evaluate'] only, not ['distribute']",
    ),
    (
        lambda c: task(c, "train")["notebook_task"].update(base_parameters={"epoch": "5"}),
        "penguin_training.tasks.train: base_parameters 'epoch' is not a widget of 04_train.py",
    ),
    (
        lambda c: job(c).pop("parameters"),
        ALL + "penguin_training.tasks.ingest: widget 'lab_dir' of 01_ingest.py has no safe "
        "default; set it in base_parameters or the job's parameters",
    ),
    (
        lambda c: task(c, "model")["notebook_task"].update(base_parameters={"lab_dir": "lab"}),
        "penguin_training.tasks.model: base_parameters 'lab_dir' is also a job parameter, which "
        "wins",
    ),
    (
        lambda c: job(c)["parameters"].append({"name": "labdir", "default": "x"}),
        "penguin_training.parameters: 'labdir' is not a widget of any task's notebook",
    ),
    (
        lambda c: job(c)["parameters"][0].update(default="/Volumes/main/default/deepml_lab"),
        ALL + "penguin_training.parameters: lab_dir /Volumes/main/default/deepml_lab is not the "
        "path of a bundle volume",
    ),
    (
        lambda c: c["variables"]["volume"].update(default="deepml_lab_${bundle.target}"),
        "[dev] resources.volumes.lab_volume: every user gets /Volumes/main/default/deepml_lab_dev; "
        "put ${workspace.current_user.short_name} in its name",
    ),
    (
        lambda c: target(c, "prod")["variables"].update(
            volume="deepml_lab_dev_${workspace.current_user.short_name}"
        ),
        "targets dev, prod share the volume /Volumes/main/default/deepml_lab_dev_ada",
    ),
    (
        lambda c: target(c, "prod")["workspace"].update(
            root_path="/Workspace/Shared/.bundle/${bundle.name}/${bundle.target}"
        ),
        "[prod] workspace.root_path /Workspace/Shared/.bundle/penguin_classifier/prod is "
        "writable by every workspace user",
    ),
    (lambda c: target(c, "prod").pop("run_as"), "[prod] run_as must be set for mode: production"),
    (
        lambda c: target(c, "prod").update(variables={"volume_name": "x"}),
        "targets.prod: variable volume_name is not defined but is assigned a value",
    ),
    (
        lambda c: task(c, "distribute")["notebook_task"]["base_parameters"].update(
            backend="${var.backend}"
        ),
        "resources.jobs.penguin_training.tasks[5].notebook_task.base_parameters.backend: "
        "${var.backend} is not a declared variable",
    ),
    (
        lambda c: job(c)["tasks"].pop(),
        "penguin_training: tasks must be ingest, prepare, model, train, evaluate, distribute, "
        "serve, found ingest, prepare, model, train, evaluate, distribute",
    ),
    (
        # scale's override still defines part of it, so scale reports its tasks instead.
        lambda c: c["resources"]["jobs"].pop("penguin_training"),
        "[dev, prod] resources.jobs.penguin_training: missing",
    ),
    # The scoring job is checked as the training job is.
    (
        lambda c: scoring(c)["tasks"][0]["notebook_task"].update(
            notebook_path="./notebooks/07_scoring.py"
        ),
        ALL + "penguin_scoring.tasks.score: notebook ./notebooks/07_scoring.py not found",
    ),
    (
        lambda c: scoring(c)["parameters"][0].update(default="/Volumes/main/default/scores"),
        ALL + "penguin_scoring.parameters: lab_dir /Volumes/main/default/scores is not the path "
        "of a bundle volume",
    ),
    (
        lambda c: scoring(c)["parameters"].pop(0),
        ALL + "penguin_scoring.tasks.score: widget 'lab_dir' of 07_score.py has no safe default",
    ),
    (
        lambda c: scoring(c)["parameters"].append({"name": "model_name", "default": "x"}),
        ALL + "penguin_scoring.parameters: 'model_name' is not a widget of any task's notebook",
    ),
    (
        lambda c: scoring(c)["tasks"][0]["notebook_task"].update(base_parameters={"model": "m"}),
        "penguin_scoring.tasks.score: base_parameters 'model' is also a job parameter, which wins",
    ),
    # A lab parameter's one value is its widget's default: the job passes none of its own.
    (
        lambda c: task(c, "model")["notebook_task"].update(base_parameters={"hidden": "10"}),
        "resources.jobs.penguin_training.tasks.model: base_parameters hidden: '10' overrides the "
        "default of 03_model.py",
    ),
    # The library's wheel: built by an artifact, installed by every task on a job cluster.
    (
        lambda c: task(c, "train").pop("libraries"),
        ALL + "penguin_training.tasks.train: runs on a job cluster without the library's wheel "
        "(libraries: whl dist/*.whl from the bundle root)",
    ),
    (
        lambda c: scoring(c)["tasks"][0].update(libraries=[{"whl": "../dist/*.whl"}]),
        "penguin_scoring.tasks.score: runs on a job cluster without the library's wheel",
    ),
    (lambda c: c.pop("artifacts"), "artifacts: no whl artifact builds the library"),
    (
        lambda c: c["artifacts"]["penguin_classifier"].update(path="notebooks"),
        ALL + "artifacts.penguin_classifier: notebooks has no pyproject.toml to build a wheel from",
    ),
    # Without scale's own name, dev and scale (both development mode) would both deploy
    # dev_ada_penguin_classifier: the second deployment fails.
    (
        lambda c: c["targets"]["scale"]["resources"].pop("registered_models"),
        "targets dev, scale share the registered model main.default.dev_ada_penguin_classifier",
    ),
    (
        lambda c: c["resources"]["experiments"]["penguin_classifier"].update(
            name="/Shared/penguin_classifier"
        ),
        "targets dev, scale share the experiment /Shared/[dev ada] penguin_classifier",
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
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / "notebooks" / "03_model.py"
    path.write_text(path.read_text().replace("# Databricks notebook source\n", "", 1))
    # Once, with every target it shows in.
    assert check_bundle(config, tmp_path) == [
        "[dev, scale, prod] penguin_training.tasks.model: 03_model.py does not start with "
        "'# Databricks notebook source'"
    ]


def test_validate_command(tmp_path, capsys):
    assert main(["validate"]) == 0
    broken = tmp_path / "databricks.yml"
    # The first `num_workers: 0` is the shared single-node spec: every single node breaks.
    broken.write_text(
        (ROOT / "databricks.yml").read_text().replace("num_workers: 0", "num_workers: 1", 1)
    )
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "resources", tmp_path / "resources")
    (tmp_path / "pyproject.toml").write_text("")  # what the wheel is built from
    assert main(["validate", "--bundle", str(broken)]) == 1
    out = capsys.readouterr().out
    assert (
        "[dev] resources.clusters.lab_cluster: num_workers 1, yet single-node spark_conf "
        "spark.master: local[*]" in out
    )
    assert "[dev, scale, prod] resources.jobs.penguin_training.job_clusters[0]" in out


# --- the bundle's files, and the library's wheel -------------------------------------------------


def test_one_file_a_job_and_paths_read_from_the_file_that_writes_them(config):
    # bundle-examples' layout: databricks.yml includes resources/*.yml, one file a job.
    assert config["include"] == ["resources/*.yml"]
    assert "resources" not in yaml.safe_load((ROOT / "databricks.yml").read_text())
    for name in ("penguin_training", "penguin_scoring"):
        (found,) = [
            path.name
            for path in (ROOT / "resources").glob("*.yml")
            if name in (yaml.safe_load(path.read_text())["resources"].get("jobs") or {})
        ]
        assert found == f"{name}.job.yml"
    # Paths in resources/ are relative to that folder, as the CLI reads them; merged, to the root.
    text = (ROOT / "resources" / "penguin_training.job.yml").read_text()
    assert "notebook_path: ../notebooks/01_ingest.py" in text
    assert task(config, "ingest")["notebook_task"]["notebook_path"] == "notebooks/01_ingest.py"
    assert task(config, "ingest")["libraries"] == [{"whl": "dist/*.whl"}]
    # A path written in databricks.yml itself (scale's override) stays as written.
    scale_distribute = scale_job(config)["tasks"][0]["notebook_task"]
    assert scale_distribute["notebook_path"] == "./notebooks/06_distribute.py"


def test_comments_link_the_docs_not_the_clis_source_files():
    files = [ROOT / "databricks.yml", *sorted((ROOT / "resources").glob("*.yml"))]
    assert len(files) == 4  # databricks.yml, lab.yml and the two jobs
    for path in files:
        text = path.read_text()
        assert ".go" not in text and "bundle/config/" not in text, path.name
    assert "https://docs.databricks.com/en/dev-tools/bundles/" in files[0].read_text()


def test_the_lab_parameters_are_the_notebooks_defaults(config):
    # The jobs pass bundle variables and job parameters only: no value of a lab parameter
    # (oversample, hidden, epochs, ...), so a default edited in a notebook is what the job runs
    # (tests/test_notebooks.py edits two in a copy and runs it).
    passed = {
        (t["task_key"], name): value
        for spec in config["resources"]["jobs"].values()
        for t in spec["tasks"]
        for name, value in (t["notebook_task"].get("base_parameters") or {}).items()
    }
    assert passed == {
        ("ingest", "source"): "${var.source_url}",
        ("distribute", "backend"): "${var.distribute_backend}",
        ("serve", "scale_to_zero"): "${var.scale_to_zero}",
    }
    # A target may change one for what it is: scale runs the ranks on its workers.
    assert scale_job(config)["tasks"][0]["notebook_task"]["base_parameters"] == {
        "local_mode": "false",
        "num_processes": "${var.num_workers}",
    }


def test_every_task_on_a_job_cluster_installs_the_wheel_the_bundle_builds(config):
    # bundle-examples' default_python: the bundle builds the package as a wheel into ./dist, and
    # each task on a job cluster attaches it; the cluster installs it on the driver and on every
    # worker, where the distributed ranks import penguin_classifier.
    assert config["artifacts"] == {
        "penguin_classifier": {
            "type": "whl",
            "path": ".",
            "build": "python3 -m pip wheel --no-deps --wheel-dir dist .",
        }
    }
    for name in ("dev", "scale", "prod"):
        for job_key, spec in target_config(config, name)["resources"]["jobs"].items():
            clusters = {c["job_cluster_key"] for c in spec["job_clusters"]}
            for each in spec["tasks"]:
                assert each["job_cluster_key"] in clusters, (name, job_key, each["task_key"])
                assert each["libraries"] == [{"whl": "dist/*.whl"}], (name, each["task_key"])


def wheel_of(project, folder):
    """The wheel the artifact's build command makes (pip wheel, no dependencies), in ``folder``;
    built without isolation, from this environment's setuptools."""
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "--wheel-dir", str(folder), str(project)], check=True, timeout=300)
    (wheel,) = folder.glob("*.whl")
    return wheel


def library_wheel(folder):
    """This project's wheel, as the bundle's artifact builds it, in ``folder/dist``: built on
    plain local disk (a build writes in place) from a copy of what the build reads, in
    ``folder/project``, so the working tree gets no build/ folder."""
    project = folder / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("notebooks/penguin_classifier", "penguins"):
        shutil.copytree(ROOT / package, project / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project)
    return wheel_of(project, folder / "dist")


def test_the_wheel_holds_the_library_and_installs_without_the_repo(local_disk):
    tmp_path = local_disk
    wheel = library_wheel(tmp_path)
    assert wheel.name == "penguin_classifier-0.1.0-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(p.name for p in (ROOT / "notebooks" / "penguin_classifier").glob("*.py"))
    assert len(modules) > 10
    assert sorted(n.split("/")[1] for n in names if n.startswith("penguin_classifier/")) == modules
    # It requires nothing unconditionally: the runtime's pyspark, torch and mlflow stay.
    metadata = zipfile.ZipFile(wheel).read("penguin_classifier-0.1.0.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("; extra ==" in line for line in requires)

    # A fresh environment, as a worker node's: the wheel installed, no PYTHONPATH into the repo,
    # another working folder. The runtime's libraries come from this test's environment: its
    # site-packages on PYTHONPATH, whose .pth files (the editable install) Python does not read.
    venv.create(tmp_path / "node", with_pip=False)
    python = tmp_path / "node" / "bin" / "python"
    # Dependencies resolved, as a cluster installs a library, from no index: it needs none.
    install = ["--python", str(python), "install", "-q", "--no-index", str(wheel)]
    subprocess.run([sys.executable, "-m", "pip", *install], check=True, timeout=120)
    runtime = sysconfig.get_paths()["purelib"]
    imports = (
        "import importlib, pkgutil, penguin_classifier as p\n"
        "for m in pkgutil.iter_modules(p.__path__):\n"
        "    importlib.import_module(f'penguin_classifier.{m.name}')\n"
        "print(p.__file__)"
    )
    result = subprocess.run(
        [str(python), "-c", imports],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": runtime, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(tmp_path / "node" / "lib"))


# --- the local run follows the bundle ------------------------------------------------------------


def test_local_run_uses_the_bundles_tasks_order_and_parameters(config):
    deployed = job_tasks(config, {}, {}, "dev", known=ADA)
    local = local_tasks()
    assert [t.key for t in local] == [t.key for t in deployed] == TASKS
    assert [t.notebook.name for t in local] == [f"0{i}_{k}.py" for i, k in enumerate(STAGES, 1)] + [
        "08_serve.py"
    ]
    # Only the job parameters that need a workspace (in every task) and the source differ.
    assert {t.params["lab_dir"] for t in deployed} == {"/Volumes/main/default/deepml_lab_dev_ada"}
    assert deployed[0].params["source"].startswith("https://raw.githubusercontent.com/")
    workspace_only = {
        "lab_dir": "lab",
        "experiment": "penguin_classifier",
        "model_name": "penguin_classifier",
        # Databricks fills in {{job.run_id}}; a local run of the job gets its own id.
        "job_run_id": local[0].params["job_run_id"],
        "endpoint_name": "predict-penguin",
    }
    assert workspace_only["job_run_id"].startswith("local-")
    assert local_tasks()[0].params["job_run_id"] != workspace_only["job_run_id"]
    for d, lo in zip(deployed, local, strict=True):
        expected = {**d.params, **workspace_only}
        if "source" in expected:
            expected["source"] = str(shipped_data())
        assert lo.params == expected
        assert not any("{{" in value for value in lo.params.values())
    # The lab's own parameters come from the notebooks' widget defaults, not the bundle.
    assert local[3].params == workspace_only


def test_local_run_of_the_scoring_job():
    (score,) = local_tasks(job="penguin_scoring")
    assert (score.key, score.notebook.name) == ("score", "07_score.py")
    # Only the scoring job's own parameters: job_tasks refuses names a job does not declare.
    assert score.params == {
        "lab_dir": "lab",
        "model": "models:/penguin_classifier@champion",
        "input": "",
        "output": "",
    }


def test_a_job_the_bundle_lacks_or_a_dynamic_value_locally_is_one_line():
    with pytest.raises(PenguinInputError) as err:
        local_tasks(job="penguin_serving")
    assert str(err.value) == (
        # In the order of resources/*.yml, one file a job.
        "job 'penguin_serving': not a job of databricks.yml (jobs: penguin_scoring, "
        "penguin_training)"
    )
    with pytest.raises(
        PenguinInputError,
        match=r"penguin_training.tasks.ingest: parameter "
        r"job_run_id is '\{\{job.run_id\}\}', a dynamic value reference",
    ):
        local_tasks(parameters={"job_run_id": "{{job.run_id}}"})


def test_local_run_of_the_scale_target_runs_the_distribute_stage_off_the_driver():
    distribute = next(t for t in local_tasks(target="scale") if t.key == "distribute")
    assert distribute.params["local_mode"] == "false"
    assert distribute.params["num_processes"] == "2"  # ${var.num_workers}


def test_variables_and_job_parameters_resolve_with_overrides(config):
    values = variable_values(target_config(config, "prod"), {"catalog": "training"})
    assert values["catalog"] == "training" and values["volume"] == "deepml_lab_prod"
    tasks = local_tasks({"distribute_backend": "torch"}, parameters={"lab_dir": "/tmp/x"})
    assert tasks[5].params["backend"] == "torch"  # distribute
    assert {t.params["lab_dir"] for t in tasks} == {"/tmp/x"}
    with pytest.raises(
        PenguinInputError, match="--var catalogue: not a variable of databricks.yml"
    ):
        variable_values(config, {"catalogue": "x"})
    with pytest.raises(PenguinInputError, match="job parameter labdir: not a parameter of"):
        local_tasks(parameters={"labdir": "x"})
    with pytest.raises(PenguinInputError, match="--target 'staging': not a target"):
        job_tasks(config, {}, {}, "staging")


def test_job_parameters_win_over_base_parameters(config):
    broken = copy.deepcopy(config)
    task(broken, "train")["notebook_task"]["base_parameters"] = {"lab_dir": "elsewhere"}
    train = job_tasks(broken, {}, {"lab_dir": "lab"}, "dev", known=ADA)[3]
    assert train.params["lab_dir"] == "lab"


def test_a_reference_the_local_run_uses_without_a_value_is_one_line(config):
    # The volume's name needs the workspace user, unknown locally (so do the experiment's and the
    # model's): lab_dir comes first.
    with pytest.raises(PenguinInputError) as err:
        job_tasks(config, {}, {}, "dev")
    assert str(err.value) == (
        "databricks.yml resources.jobs.penguin_training.parameters.lab_dir: "
        "${workspace.current_user.short_name} has no value outside a workspace"
    )
    broken = copy.deepcopy(config)
    task(broken, "train")["notebook_task"]["base_parameters"] = {"lr": "${var.lr}"}
    with pytest.raises(PenguinInputError) as err:
        job_tasks(broken, {}, {}, "dev", known=ADA)
    assert str(err.value) == (
        "databricks.yml resources.jobs.penguin_training.tasks.train.base_parameters.lr: "
        "${var.lr} has no value"
    )


def test_task_order_comes_from_depends_on():
    tasks = [
        {"task_key": "c", "depends_on": [{"task_key": "b"}]},
        {"task_key": "a"},
        {"task_key": "b", "depends_on": [{"task_key": "a"}]},
    ]
    assert [t["task_key"] for t in ordered_tasks(tasks)] == ["a", "b", "c"]
    tasks[1]["depends_on"] = [{"task_key": "c"}]
    with pytest.raises(PenguinInputError) as err:
        ordered_tasks(tasks)
    assert str(err.value).startswith("databricks.yml: tasks depend on each other in a cycle: ")
    assert "\n" not in str(err.value)
    with pytest.raises(PenguinInputError, match="task 'a' depends on unknown 'z'"):
        ordered_tasks([{"task_key": "a", "depends_on": [{"task_key": "z"}]}])


def test_run_with_an_unknown_variable_is_one_line_and_exit_2(capsys):
    assert main(["run", "--var", "catalogue=x"]) == 2
    assert capsys.readouterr().err.startswith(
        "penguins run: --var catalogue: not a variable of databricks.yml"
    )


# --- what the deploy path relies on: the CLI's production check, the runtime's packages --------


def comment_above(text, line):
    """The comment lines right above the one line of ``text`` that is ``line``, joined."""
    lines = text.splitlines()
    (at,) = [i for i, each in enumerate(lines) if each == line]
    above = []
    while lines[at - 1 - len(above)].lstrip().startswith("#"):
        above.insert(0, lines[at - 1 - len(above)].strip().lstrip("# "))
    return " ".join(above)


def test_prod_sets_the_root_path_the_cli_checks_and_the_comments_say_so(config):
    # CLI v0.239 and later (validateProductionMode, databricks/cli) look for an explicit
    # workspace.root_path in the production target itself; v0.236 to v0.238 for run_as on every
    # job. prod has both, so every CLI the bundle accepts (>= 0.236) deploys it.
    assert target(config, "prod")["workspace"]["root_path"].startswith("/Workspace/Users/")
    assert "root_path" not in config.get("workspace", {})  # a top-level one would not count
    assert target(config, "prod")["run_as"] == {"user_name": "${workspace.current_user.userName}"}
    text = (ROOT / "databricks.yml").read_text()
    root = comment_above(
        text, f"      root_path: {target(config, 'prod')['workspace']['root_path']}"
    )
    assert "must set 'workspace.root_path' to make sure only one copy is deployed" in root
    assert "CLI v0.239 and later" in root
    run_as = comment_above(text, "    run_as:")
    assert "CLI v0.236 to v0.238 refuse a production deploy by a user unless every job" in run_as


def test_dependency_floors_admit_the_runtime_and_have_what_the_code_imports(config):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def requirement(name, listed):
        (found,) = [r for r in map(Requirement, listed) if r.name == name]
        return found.specifier

    # The wheel the bundle installs on the runtime requires nothing (test_the_wheel_...); a local
    # install takes the runtime's libraries from the extra `local`, which `dev` includes.
    assert project["dependencies"] == []
    assert "penguin-classifier[local]" in project["optional-dependencies"]["dev"]
    # The bundle's runtime, 15.4 LTS ML, ships numpy 1.23.5 (and the suite passes with it).
    assert config["variables"]["spark_version"]["default"].startswith("15.4.x-cpu-ml")
    assert requirement("numpy", project["optional-dependencies"]["local"]).contains("1.23.5")
    # tests/test_submit.py imports databricks.sdk.mixins.jobs (JobsExt), first in 0.38.0: the
    # 0.37.0 wheel has no databricks/sdk/mixins/jobs.py.
    for extra in ("submit", "dev"):
        sdk = requirement("databricks-sdk", project["optional-dependencies"][extra])
        assert sdk.contains("0.38.0") and not sdk.contains("0.37.0")

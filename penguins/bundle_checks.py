"""Checks of ``databricks.yml`` beyond its JSON schema: what ``databricks bundle validate``
adds, and what this project's jobs need (the training job's six chained stages, widgets that
match and whose defaults the jobs leave alone, a lab folder that is a bundle volume, one volume,
experiment and model per target and user, the library's wheel on every job cluster). Every
target is checked as the CLI sees it, its overrides merged in.

Each check returns a list of problems, one line each; an empty list means it passed.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from penguin_classifier.errors import PenguinInputError

from .bundle import JOB, REFERENCE, job_parameters, resolver, target_config, variable_values
from .runner import notebook_widgets

# The task keys of the lab's stages, in the training job's order.
STAGE_TASKS = ["ingest", "prepare", "model", "train", "evaluate", "distribute"]
# Jobs whose tasks must be exactly these, in this order, each depending on exactly these tasks:
# the stages' chain, and the serving of the champion beside distribute.
CHAINS = {
    JOB: {
        **{stage: STAGE_TASKS[i - 1 : i] for i, stage in enumerate(STAGE_TASKS)},
        "serve": ["evaluate"],
    }
}
NOTEBOOK_HEADER = "# Databricks notebook source"
# Two workspace users, to resolve ``${workspace.current_user.*}`` and see what differs per user.
EXAMPLE_USERS = [
    {
        "workspace.current_user.userName": f"{name}@example.com",
        "workspace.current_user.short_name": name,
    }
    for name in ("ada", "grace")
]


def strings(node, path: str = ""):
    """Every string in a YAML tree with its dotted path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def undeclared_variables(config: dict) -> list[str]:
    declared = set(config.get("variables", {}))
    return [
        f"{path}: ${{{name}}} is not a declared variable"
        for path, value in strings(config)
        for name in REFERENCE.findall(value)
        if name.startswith("var.") and name[4:].split(".")[0] not in declared
    ]


def cluster_specs(config: dict):
    """``(where, spec, interactive)`` for every cluster the bundle creates."""
    resources = config.get("resources", {})
    for key, spec in (resources.get("clusters") or {}).items():
        yield f"resources.clusters.{key}", spec, True
    for job_key, job in (resources.get("jobs") or {}).items():
        for i, cluster in enumerate(job.get("job_clusters") or []):
            where = f"resources.jobs.{job_key}.job_clusters[{i}].new_cluster"
            yield where, cluster.get("new_cluster", {}), False
        for task in job.get("tasks") or []:
            if "new_cluster" in task:
                where = f"resources.jobs.{job_key}.tasks.{task['task_key']}.new_cluster"
                yield where, task["new_cluster"], False


def workers(spec: dict, resolve, where: str) -> int:
    """The cluster's ``num_workers``, resolved."""
    value = resolve(str(spec.get("num_workers", 0)), f"{where}.num_workers")
    if not value.isdigit():
        raise PenguinInputError(f"{where}: num_workers {value!r} is not a whole number")
    return int(value)


def cluster_problems(config: dict, resolve) -> list[str]:
    """The lab's clusters: ML runtime on CPU, no Photon, single user; a single node is set up as
    one (the CLI warns otherwise), a cluster with workers carries no single-node setting."""
    problems = []
    for where, spec, interactive in cluster_specs(config):
        try:
            runtime = resolve(str(spec.get("spark_version")), f"{where}.spark_version")
            count = workers(spec, resolve, where)
        except PenguinInputError as err:
            problems.append(str(err))
            continue
        conf, tags = spec.get("spark_conf") or {}, spec.get("custom_tags") or {}
        single_node = [
            (
                conf.get("spark.databricks.cluster.profile") == "singleNode",
                "spark_conf spark.databricks.cluster.profile: singleNode",
            ),
            (
                str(conf.get("spark.master", "")).startswith("local"),
                "spark_conf spark.master: local[*]",
            ),
            (tags.get("ResourceClass") == "SingleNode", "custom_tags ResourceClass: SingleNode"),
        ]
        if count == 0:
            expected = [(ok, f"a single node (num_workers 0) needs {s}") for ok, s in single_node]
        else:
            expected = [
                (not ok, f"num_workers {count}, yet single-node {s}") for ok, s in single_node
            ]
        expected += [
            (spec.get("data_security_mode") == "SINGLE_USER", "data_security_mode: SINGLE_USER"),
            (spec.get("runtime_engine") == "STANDARD", "runtime_engine: STANDARD (no Photon)"),
            ("-ml-" in runtime, f"spark_version {runtime} is not an ML runtime"),
            ("gpu" not in runtime, f"spark_version {runtime} is a GPU runtime"),
        ]
        if interactive:
            expected.append((bool(spec.get("autotermination_minutes")), "autotermination_minutes"))
        problems += [f"{where}: {message}" for ok, message in expected if not ok]
    return problems


def unsafe_default(default: str) -> bool:
    """A widget default that only works locally: empty, or a relative path like ``lab``."""
    return default in ("", "lab")


def task_cluster(job: dict, task: dict) -> dict:
    """The cluster spec a task runs on (its own, or its job cluster's)."""
    if "new_cluster" in task:
        return task["new_cluster"]
    for cluster in job.get("job_clusters") or []:
        if cluster.get("job_cluster_key") == task.get("job_cluster_key"):
            return cluster.get("new_cluster") or {}
    return {}


def task_problems(config: dict, root: Path, resolve) -> list[str]:
    """Every job's tasks (``job_problems``); the training job must be there."""
    jobs = config.get("resources", {}).get("jobs") or {}
    problems = [] if JOB in jobs else [f"resources.jobs.{JOB}: missing"]
    for job, spec in jobs.items():
        problems += job_problems(job, spec, root, resolve)
    return problems


def job_problems(job: str, spec: dict, root: Path, resolve) -> list[str]:
    """Notebooks exist and are notebooks; a job of CHAINS is its chain; parameters are widgets;
    a stage with ``local_mode`` on a cluster with workers runs on them."""
    tasks = spec.get("tasks") or []
    keys = [t.get("task_key") for t in tasks]
    chain = CHAINS.get(job)
    job_params = job_parameters(spec)
    problems, all_widgets = [], set()
    if chain and keys != list(chain):
        problems.append(f"{job}: tasks must be {', '.join(chain)}, found {', '.join(keys)}")
    for i, task in enumerate(tasks):
        where = f"{job}.tasks.{task.get('task_key')}"
        deps = [d.get("task_key") for d in task.get("depends_on") or []]
        problems += [f"{where}: depends_on unknown task {d!r}" for d in deps if d not in keys]
        if chain and keys == list(chain) and deps != chain[keys[i]]:
            problems.append(f"{where}: must depend on {chain[keys[i]]} only, not {deps}")
        notebook = task.get("notebook_task") or {}
        path = root / str(notebook.get("notebook_path", ""))
        if not notebook or not path.is_file():
            problems.append(f"{where}: notebook {notebook.get('notebook_path')} not found")
            continue
        if path.read_text().splitlines()[:1] != [NOTEBOOK_HEADER]:
            problems.append(f"{where}: {path.name} does not start with '{NOTEBOOK_HEADER}'")
        widgets = notebook_widgets(path)
        all_widgets |= set(widgets)
        params = notebook.get("base_parameters") or {}
        for name in params:
            if name not in widgets:
                problems.append(f"{where}: base_parameters {name!r} is not a widget of {path.name}")
            elif name in job_params:
                problems.append(
                    f"{where}: base_parameters {name!r} is also a job parameter, which wins"
                )
        problems += [
            f"{where}: widget {name!r} of {path.name} has no safe default; set it in "
            "base_parameters or the job's parameters"
            for name, default in widgets.items()
            if unsafe_default(default) and name not in params and name not in job_params
        ]
        if "local_mode" in widgets:
            try:
                count = workers(task_cluster(spec, task), resolve, where)
                local_mode = resolve(str({**params, **job_params}.get("local_mode", "true")), where)
            except PenguinInputError as err:
                problems.append(str(err))
                continue
            if count and local_mode != "false":
                problems.append(
                    f"{where}: runs on a cluster with {count} workers but not on them; "
                    'set base_parameters local_mode: "false"'
                )
    problems += [
        f"{job}.parameters: {name!r} is not a widget of any task's notebook"
        for name in job_params
        if name not in all_widgets
    ]
    return problems


def fixed_parameters(config: dict, root: Path) -> list[str]:
    """A lab parameter has one value, its widget's default in the notebook: a job's
    ``base_parameters`` may pass a bundle variable (``${var.x}``), never a value of its own, or an
    edit of the default would do nothing under the job. (A target may set values: what the
    scale target changes.)"""
    problems = []
    for job, spec in ((config.get("resources") or {}).get("jobs") or {}).items():
        for task in spec.get("tasks") or []:
            notebook = task.get("notebook_task") or {}
            path = root / str(notebook.get("notebook_path", ""))
            widgets = notebook_widgets(path) if path.is_file() else {}
            problems += [
                f"resources.jobs.{job}.tasks.{task.get('task_key')}: base_parameters {name}: "
                f"{value!r} overrides the default of {path.name} "
                f"({widgets[name]!r}); leave it to the notebook, or pass a bundle variable"
                for name, value in (notebook.get("base_parameters") or {}).items()
                if name in widgets and not REFERENCE.search(str(value))
            ]
    return problems


def wheel_problems(config: dict, root: Path) -> list[str]:
    """The library the notebooks import is a ``whl`` artifact built from the project
    (pyproject.toml), and every task on a job cluster installs it: its executors and the
    distributed ranks on its workers import it from there."""
    artifacts = {
        name: spec
        for name, spec in (config.get("artifacts") or {}).items()
        if isinstance(spec, dict) and spec.get("type") == "whl"
    }
    if not artifacts:
        return ["artifacts: no whl artifact builds the library the notebooks import"]
    problems = [
        f"artifacts.{name}: {spec.get('path', '.')} has no pyproject.toml to build a wheel from"
        for name, spec in artifacts.items()
        if not (root / str(spec.get("path", ".")) / "pyproject.toml").is_file()
    ]
    wheels = {
        posixpath.normpath(posixpath.join(str(spec.get("path", ".")), "dist", "*.whl"))
        for spec in artifacts.values()
    }
    for job, spec in ((config.get("resources") or {}).get("jobs") or {}).items():
        for task in spec.get("tasks") or []:
            if "job_cluster_key" not in task and "new_cluster" not in task:
                continue
            installed = {
                posixpath.normpath(str(library["whl"]))
                for library in task.get("libraries") or []
                if isinstance(library, dict) and "whl" in library
            }
            if not installed & wheels:
                problems.append(
                    f"{job}.tasks.{task.get('task_key')}: runs on a job cluster without the "
                    f"library's wheel (libraries: whl {' or '.join(sorted(wheels))} from the "
                    "bundle root)"
                )
    return problems


def volume_paths(config: dict, resolve) -> dict[str, str]:
    """``{key: /Volumes/catalog/schema/name}`` of every volume of the bundle."""
    return {
        key: resolve(
            f"/Volumes/{v.get('catalog_name')}/{v.get('schema_name')}/{v.get('name')}",
            f"resources.volumes.{key}",
        )
        for key, v in (config.get("resources", {}).get("volumes") or {}).items()
    }


def deployed_names(config: dict, resolve) -> dict[tuple[str, str], str]:
    """``{(where, what): name}`` of what a deployment owns by name: volumes (their path),
    experiments and registered models (catalog.schema.name)."""
    resources = config.get("resources", {})
    names = {
        (f"resources.volumes.{key}", "volume"): path
        for key, path in volume_paths(config, resolve).items()
    }
    for key, spec in (resources.get("experiments") or {}).items():
        where = f"resources.experiments.{key}"
        names[(where, "experiment")] = resolve(str(spec.get("name")), where)
    for key, m in (resources.get("registered_models") or {}).items():
        where = f"resources.registered_models.{key}"
        full = f"{m.get('catalog_name')}.{m.get('schema_name')}.{m.get('name')}"
        names[(where, "registered model")] = resolve(full, where)
    return names


def deployment_problems(config: dict, resolvers: list) -> list[str]:
    """Every job's lab folder is a volume of the bundle; each user of a development target has
    their own volumes, experiments and models; production deploys one copy, outside /Shared,
    with run_as and permissions set."""
    first, second = resolvers
    jobs = config.get("resources", {}).get("jobs") or {}
    try:
        paths = volume_paths(config, first)
        names, others = deployed_names(config, first), deployed_names(config, second)
        lab_dirs = {
            job: first(params["lab_dir"], f"{job}.parameters.lab_dir")
            for job, spec in jobs.items()
            if "lab_dir" in (params := job_parameters(spec))
        }
        root_path = first(config.get("workspace", {}).get("root_path", ""), "workspace.root_path")
    except PenguinInputError as err:
        return [str(err)]
    problems = [
        f"{job}.parameters: lab_dir {lab_dir} is not the path of a bundle volume"
        for job, lab_dir in lab_dirs.items()
        if lab_dir not in paths.values()
    ]
    mode = config.get("bundle", {}).get("mode")
    if mode == "development":
        problems += [
            f"{where}: every user gets {name}; put "
            "${workspace.current_user.short_name} in its name"
            for (where, what), name in names.items()
            if others.get((where, what)) == name
        ]
    if mode == "production":
        if not root_path:
            problems.append("workspace.root_path must be set for mode: production")
        elif root_path.startswith(("/Workspace/Shared", "/Shared")):
            problems.append(f"workspace.root_path {root_path} is writable by every workspace user")
        problems += [
            f"{key} must be set for mode: production"
            for key in ("run_as", "permissions")
            if not config.get(key)
        ]
    return problems


def check_bundle(config: dict, root: Path) -> list[str]:
    """Every problem, once, with the targets it shows in: ``[dev, prod] resources...: ...``."""
    problems = undeclared_variables(config) + fixed_parameters(config, root)
    targets = list(config.get("targets") or {})
    if not targets:
        problems.append("targets: none defined")
    found: dict[str, list[str]] = {}
    owners: dict[str, list[str]] = {}  # "the volume /Volumes/...": targets that deploy it
    for target in targets:
        try:
            merged = target_config(config, target)
            variables = variable_values(merged, {})
        except PenguinInputError as err:
            problems.append(f"targets.{target}: {err}")
            continue
        resolvers = [resolver(merged, variables, user) for user in EXAMPLE_USERS]
        for problem in (
            cluster_problems(merged, resolvers[0])
            + task_problems(merged, root, resolvers[0])
            + wheel_problems(merged, root)
            + deployment_problems(merged, resolvers)
        ):
            found.setdefault(problem, []).append(target)
        try:
            for (_, what), name in deployed_names(merged, resolvers[0]).items():
                owners.setdefault(f"the {what} {name}", []).append(target)
        except PenguinInputError:
            pass  # reported by deployment_problems
    problems += [f"[{', '.join(where)}] {problem}" for problem, where in found.items()]
    problems += [
        f"targets {', '.join(where)} share {owned}"
        for owned, where in owners.items()
        if len(where) > 1
    ]
    return problems


def load_schema(path: Path) -> dict:
    """The bundle JSON schema with its ``\\p{L}``/``\\p{N}`` classes rewritten for Python's re."""
    text = path.read_text()
    text = text.replace(r"[\\p{L}\\p{N}]", r"[^\\W_]").replace(r"\\p{L}", r"[^\\W\\d_]")
    return json.loads(text)


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Every place where ``config`` breaks the schema, most specific error first."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        deepest = max(
            descendants(error),
            key=lambda e: (len(e.absolute_path), e.validator not in ("oneOf", "anyOf")),
        )
        path = ".".join(str(p) for p in deepest.absolute_path) or "(top)"
        problems.append(f"{path}: {deepest.message}")
    return problems


def descendants(error):
    """An error and, for ``oneOf``/``anyOf``, the errors of every branch below it."""
    yield error
    for sub in error.context or []:
        yield from descendants(sub)

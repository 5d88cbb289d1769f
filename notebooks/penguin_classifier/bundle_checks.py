"""Checks of ``databricks.yml`` beyond its JSON schema: what ``databricks bundle validate``
adds, and what this project's job needs (six chained stages, widgets that match).

Each check returns a list of problems, one line each; an empty list means it passed.
"""

from __future__ import annotations

import json
from pathlib import Path

from .bundle import JOB, REFERENCE, resolve, variable_values
from .runner import notebook_widgets

STAGES = ["ingest", "prepare", "model", "train", "evaluate", "distribute"]
NOTEBOOK_HEADER = "# Databricks notebook source"


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
                yield (
                    f"resources.jobs.{job_key}.tasks.{task['task_key']}",
                    task["new_cluster"],
                    False,
                )


def single_node_problems(config: dict) -> list[str]:
    """The lab's cluster: single node, ML runtime on CPU, no Photon, single user."""
    variables = variable_values(config, {}, "dev")
    problems = []
    for where, spec, interactive in cluster_specs(config):
        conf, tags = spec.get("spark_conf") or {}, spec.get("custom_tags") or {}
        runtime = resolve(str(spec.get("spark_version")), variables, {})
        expected = [
            (spec.get("num_workers") == 0, "num_workers must be 0"),
            (
                conf.get("spark.databricks.cluster.profile") == "singleNode",
                "spark_conf spark.databricks.cluster.profile must be singleNode",
            ),
            (
                str(conf.get("spark.master", "")).startswith("local["),
                "spark_conf spark.master must be local[*]",
            ),
            (tags.get("ResourceClass") == "SingleNode", "custom_tags ResourceClass: SingleNode"),
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


def task_problems(config: dict, root: Path, job: str = JOB) -> list[str]:
    """Notebooks exist and are notebooks; the chain is the six stages; parameters are widgets."""
    spec = (config.get("resources", {}).get("jobs") or {}).get(job)
    if spec is None:
        return [f"resources.jobs.{job}: missing"]
    tasks = spec.get("tasks") or []
    keys = [t.get("task_key") for t in tasks]
    problems = []
    if keys != STAGES:
        problems.append(f"{job}: tasks must be {' -> '.join(STAGES)}, found {' -> '.join(keys)}")
    for i, task in enumerate(tasks):
        where = f"{job}.tasks.{task.get('task_key')}"
        deps = [d.get("task_key") for d in task.get("depends_on") or []]
        problems += [f"{where}: depends_on unknown task {d!r}" for d in deps if d not in keys]
        if i > 0 and keys == STAGES and deps != [STAGES[i - 1]]:
            problems.append(f"{where}: must depend on {STAGES[i - 1]!r} only, not {deps}")
        notebook = task.get("notebook_task") or {}
        path = root / str(notebook.get("notebook_path", ""))
        if not notebook or not path.is_file():
            problems.append(f"{where}: notebook {notebook.get('notebook_path')} not found")
            continue
        if path.read_text().splitlines()[:1] != [NOTEBOOK_HEADER]:
            problems.append(f"{where}: {path.name} does not start with '{NOTEBOOK_HEADER}'")
        widgets = notebook_widgets(path)
        params = notebook.get("base_parameters") or {}
        problems += [
            f"{where}: base_parameters {name!r} is not a widget of {path.name}"
            for name in params
            if name not in widgets
        ]
        problems += [
            f"{where}: widget {name!r} of {path.name} has no safe default; set it in "
            "base_parameters"
            for name, default in widgets.items()
            if unsafe_default(default) and name not in params
        ]
    return problems


def check_bundle(config: dict, root: Path) -> list[str]:
    return undeclared_variables(config) + single_node_problems(config) + task_problems(config, root)


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

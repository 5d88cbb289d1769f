"""Read ``databricks.yml`` as the Databricks CLI does: targets merged in, ``${...}`` resolved.

``penguins run`` executes the bundle's own task graph locally with this module, so the local run
and the deployed job cannot drift apart.
"""

from __future__ import annotations

import posixpath
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import yaml
from penguin_classifier.errors import PenguinInputError
from penguin_classifier.runtime import project_root

from .runner import Task

JOB = "penguin_training"
REFERENCE = re.compile(r"\$\{([A-Za-z_][\w.-]*)\}")
# Top-level keys a target merges into (the rest it replaces), and the lists of a job whose
# elements merge by key: https://docs.databricks.com/en/dev-tools/bundles/settings.html#targets
MERGED_KEYS = ("bundle", "workspace", "artifacts", "resources", "sync", "permissions", "presets")
KEYED_LISTS = (("job_clusters", "job_cluster_key"), ("tasks", "task_key"), ("parameters", "name"))
# Fields that hold a path of the bundle's files, relative to the file that sets them.
PATH_KEYS = ("notebook_path", "whl")


def bundle_file() -> Path:
    return project_root() / "databricks.yml"


def load_bundle(path: Path | None = None) -> dict:
    """The bundle configuration with its ``include`` files merged (resources, variables, targets).

    A path in an included file is relative to that file, as the CLI reads it; merged here, it
    becomes relative to the bundle's root (``../notebooks/01_ingest.py`` in ``resources/`` is
    ``notebooks/01_ingest.py``).
    """
    path = path or bundle_file()
    config = plain(yaml.safe_load(path.read_text()) or {})
    for pattern in config.get("include", []):
        for included in sorted(path.parent.glob(pattern)):
            folder = included.parent.relative_to(path.parent).as_posix()
            part = rebased(plain(yaml.safe_load(included.read_text()) or {}), folder)
            config = merge(config, part)
    return config


def rebased(node, folder: str):
    """``node`` with its local paths (``PATH_KEYS``) made relative to the bundle root, from
    ``folder`` (relative to the root) where they were written."""
    if isinstance(node, dict):
        return {
            key: posixpath.normpath(posixpath.join(folder, value))
            if key in PATH_KEYS and isinstance(value, str) and local_path(value)
            else rebased(value, folder)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [rebased(value, folder) for value in node]
    return node


def local_path(value: str) -> bool:
    """A path of the bundle's own files: relative, no URI scheme, no ``${...}``."""
    return not value.startswith(("/", "${")) and "://" not in value


def plain(node):
    """A copy that shares nothing: YAML aliases (``*single_node``) become separate values."""
    if isinstance(node, dict):
        return {key: plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    return node


def merge(base, other):
    """The CLI's merge: maps key by key, lists concatenated, ``other`` wins otherwise."""
    if base is None:
        return other
    if other is None:
        return base
    if isinstance(base, dict) and isinstance(other, dict):
        return {**base, **{k: merge(base[k], v) if k in base else v for k, v in other.items()}}
    if isinstance(base, list) and isinstance(other, list):
        return base + other
    return other


def merge_by_key(items: list[dict], key: str) -> list[dict]:
    """Elements with the same ``key`` merged into the first of them, in first-seen order."""
    merged: dict[str, dict] = {}
    for item in items:
        name = item.get(key, "")
        merged[name] = merge(merged[name], item) if name in merged else item
    return list(merged.values())


def target_config(config: dict, target: str) -> dict:
    """``config`` as ``databricks bundle ... -t target`` sees it: the target's overrides merged."""
    targets = config.get("targets") or {}
    if target not in targets:
        raise PenguinInputError(
            f"--target {target!r}: not a target of databricks.yml (targets: {', '.join(targets)})"
        )
    spec = plain(targets[target] or {})
    merged = plain(config)
    for key in MERGED_KEYS:
        if key in spec:
            merged[key] = merge(merged.get(key), spec[key])
    declared = merged.setdefault("variables", {})
    for name, value in (spec.get("variables") or {}).items():
        if name not in declared:
            raise PenguinInputError(f"variable {name} is not defined but is assigned a value")
        if not isinstance(value, dict) or (is_complex(declared[name]) and "default" not in value):
            value = {"default": value}  # the short form: the value itself
        declared[name].update({k: value[k] for k in ("default", "lookup") if k in value})
    merged = with_complex_variables(merged)
    if "run_as" in spec:
        merged["run_as"] = spec["run_as"]
    merged.setdefault("bundle", {})["target"] = target
    if "mode" in spec:
        merged["bundle"]["mode"] = spec["mode"]
    for job in (merged.get("resources", {}).get("jobs") or {}).values():
        for field, key in KEYED_LISTS:
            if job.get(field):
                job[field] = merge_by_key(job[field], key)
    if merged["bundle"].get("mode") == "development":
        prefix_dev_names(merged.get("resources") or {})
    return merged


def is_complex(variable) -> bool:
    return isinstance(variable, dict) and variable.get("type") == "complex"


def with_complex_variables(config: dict) -> dict:
    """``config`` with each value that is exactly ``${var.<name>}`` of a complex variable (such
    as ``new_cluster: ${var.single_node}``) replaced by a copy of its value, as the CLI does."""
    values = {
        f"${{var.{name}}}": spec.get("default")
        for name, spec in (config.get("variables") or {}).items()
        if is_complex(spec)
    }

    def substitute(node):
        if isinstance(node, str) and node in values:
            return plain(values[node])
        if isinstance(node, dict):
            return {key: substitute(value) for key, value in node.items()}
        if isinstance(node, list):
            return [substitute(value) for value in node]
        return node

    return {key: v if key == "variables" else substitute(v) for key, v in config.items()}


def prefix_dev_names(resources: dict) -> None:
    """Development mode's names: ``[dev <short_name>] `` before a job's or cluster's name and an
    experiment's last path part, ``dev_<short_name>_`` before a registered model's (a short name
    is already lower case letters, digits and ``_``). Volumes keep their names; a target's own
    ``presets.name_prefix`` is not modelled (this bundle sets none).
    https://docs.databricks.com/en/dev-tools/bundles/deployment-modes.html
    """
    user = "${workspace.current_user.short_name}"
    for kind, field, prefix in (
        ("jobs", "name", f"[dev {user}] "),
        ("clusters", "cluster_name", f"[dev {user}] "),
        ("experiments", "name", f"[dev {user}] "),
        ("registered_models", "name", f"dev_{user}_"),
    ):
        for spec in (resources.get(kind) or {}).values():
            if spec and field in spec:
                name = str(spec[field])
                folder, slash, last = (
                    name.rpartition("/") if kind == "experiments" else ("", "", name)
                )
                spec[field] = f"{folder}{slash}{prefix}{last}"


def variable_values(config: dict, overrides: dict[str, str]) -> dict[str, str]:
    """Each variable's default (a target's where it sets one), then ``overrides``; unresolved."""
    declared = config.get("variables") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise PenguinInputError(
            f"--var {', '.join(unknown)}: not a variable of databricks.yml "
            f"(variables: {', '.join(declared)})"
        )
    values = {
        name: str(spec["default"])
        for name, spec in declared.items()
        if "default" in spec and not is_complex(spec)  # a complex one is a whole value
    }
    return {**values, **overrides}


def resolver(config: dict, variables: dict[str, str], known: dict[str, str] | None = None):
    """A function ``resolve(value, where)`` that replaces every ``${...}`` in one pass.

    ``${var.x}`` comes from ``variables``, ``${bundle.name}``/``${bundle.target}`` and
    ``${resources.<type>.<key>.<field>}`` from the (target) ``config``, anything else (such as
    ``${workspace.current_user.short_name}``) from ``known``. A reference without a value raises
    PenguinInputError naming it and ``where`` it is used.
    """
    bundle = config.get("bundle") or {}
    context = {"bundle.name": bundle.get("name"), "bundle.target": bundle.get("target")}
    context.update(known or {})

    def value_of(name: str, where: str, seen: tuple[str, ...]) -> str:
        if name.startswith("var."):
            value = variables.get(name[4:])
        elif name.startswith("resources."):
            value = config
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        else:
            value = context.get(name)
        if value is None or isinstance(value, dict | list) or name in seen:
            outside = " outside a workspace" if name.startswith("workspace.") else ""
            raise PenguinInputError(f"{where}: ${{{name}}} has no value{outside}")
        return resolve(str(value), where, (*seen, name))

    def resolve(value: str, where: str, seen: tuple[str, ...] = ()) -> str:
        return REFERENCE.sub(lambda match: value_of(match.group(1), where, seen), str(value))

    return resolve


def ordered_tasks(tasks: list[dict]) -> list[dict]:
    """Tasks in an order where each comes after the tasks it depends on."""
    graph = {t["task_key"]: [d["task_key"] for d in t.get("depends_on") or []] for t in tasks}
    for key, deps in graph.items():
        for dep in deps:
            if dep not in graph:
                raise PenguinInputError(f"databricks.yml: task {key!r} depends on unknown {dep!r}")
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        cycle = " -> ".join(err.args[1])
        raise PenguinInputError(
            f"databricks.yml: tasks depend on each other in a cycle: {cycle}"
        ) from None
    by_key = {t["task_key"]: t for t in tasks}
    return [by_key[key] for key in order]


def job_spec(config: dict, job: str) -> dict:
    """The job ``job`` of ``config``; PenguinInputError listing the jobs if there is none."""
    jobs = (config.get("resources") or {}).get("jobs") or {}
    if job not in jobs:
        raise PenguinInputError(
            f"job {job!r}: not a job of databricks.yml (jobs: {', '.join(jobs) or 'none'})"
        )
    return jobs[job]


def job_parameters(spec: dict) -> dict[str, str]:
    """``{name: default}`` of a job's parameters."""
    return {p.get("name"): p.get("default", "") for p in spec.get("parameters") or []}


def job_tasks(
    config: dict | None = None,
    variables: dict[str, str] | None = None,
    parameters: dict[str, str] | None = None,
    target: str = "dev",
    job: str = JOB,
    root: Path | None = None,
    known: dict[str, str] | None = None,
) -> list[Task]:
    """The job's notebook tasks for ``target`` in dependency order, with their widget values.

    As on Databricks, every job parameter (its default, or the value in ``parameters``) goes to
    every task and wins over a task's ``base_parameters`` of the same name. Only the values a
    task receives are resolved, so a reference the local run overrides never needs a value.
    """
    config = target_config(config if config is not None else load_bundle(), target)
    root = root or project_root()
    resolve = resolver(config, variable_values(config, variables or {}), known)
    spec = job_spec(config, job)
    where = f"databricks.yml resources.jobs.{job}"
    defaults = job_parameters(spec)
    parameters = parameters or {}
    unknown = sorted(set(parameters) - set(defaults))
    if unknown:
        raise PenguinInputError(
            f"job parameter {', '.join(unknown)}: not a parameter of {job} "
            f"(parameters: {', '.join(defaults) or 'none'})"
        )
    job_values = {
        name: parameters[name]
        if name in parameters
        else resolve(value, f"{where}.parameters.{name}")
        for name, value in defaults.items()
    }
    tasks = []
    for task in ordered_tasks(spec["tasks"]):
        key, notebook = task["task_key"], task["notebook_task"]
        params = {
            name: resolve(value, f"{where}.tasks.{key}.base_parameters.{name}")
            for name, value in (notebook.get("base_parameters") or {}).items()
            if name not in job_values
        }
        tasks.append(
            Task(
                key=key,
                notebook=(root / notebook["notebook_path"]).resolve(),
                params={**params, **job_values},
                depends_on=[d["task_key"] for d in task.get("depends_on") or []],
            )
        )
    return tasks

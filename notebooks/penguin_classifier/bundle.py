"""Read ``databricks.yml``: variables, the job's task graph, and ``${...}`` references.

``penguins run`` executes the bundle's own task graph locally with this module, so the local run
and the deployed job cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import PenguinInputError
from .runner import Task
from .runtime import project_root

JOB = "penguin_training"
REFERENCE = re.compile(r"\$\{([A-Za-z_][\w.-]*)\}")


def bundle_file() -> Path:
    return project_root() / "databricks.yml"


def load_bundle(path: Path | None = None) -> dict:
    """The bundle configuration with its ``include`` files merged (resources, variables)."""
    path = path or bundle_file()
    config = yaml.safe_load(path.read_text()) or {}
    for pattern in config.get("include", []):
        for included in sorted(path.parent.glob(pattern)):
            merge(config, yaml.safe_load(included.read_text()) or {})
    return config


def merge(into: dict, other: dict) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def bundle_context(config: dict, target: str) -> dict[str, str]:
    """The ``${bundle.*}`` references a local run can resolve."""
    return {"bundle.target": target, "bundle.name": config.get("bundle", {}).get("name", "")}


def variable_values(config: dict, overrides: dict[str, str], target: str) -> dict[str, str]:
    """Variable defaults, target overrides, then ``overrides``; references resolved."""
    declared = config.get("variables", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise PenguinInputError(
            f"--var {', '.join(unknown)}: not a variable of databricks.yml "
            f"(variables: {', '.join(declared)})"
        )
    values = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    target_vars = config.get("targets", {}).get(target, {}).get("variables", {}) or {}
    values.update(
        {k: str(v.get("default", "") if isinstance(v, dict) else v) for k, v in target_vars.items()}
    )
    values.update(overrides)
    context = bundle_context(config, target)
    for _ in range(10):  # variables may refer to other variables
        values = {name: resolve(value, values, context) for name, value in values.items()}
    return values


def resolve(value: str, variables: dict[str, str], context: dict[str, str]) -> str:
    """Replace ``${var.x}`` and ``${bundle.target}``-style references; leave others as they are."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("var."):
            return variables.get(name[4:], match.group(0))
        return context.get(name, match.group(0))

    return REFERENCE.sub(substitute, str(value))


def ordered_tasks(tasks: list[dict]) -> list[dict]:
    """Tasks in an order where each comes after the tasks it depends on (stable otherwise)."""
    by_key = {t["task_key"]: t for t in tasks}
    done: list[str] = []

    def visit(key: str, path: tuple[str, ...]) -> None:
        if key in done:
            return
        if key in path:
            raise PenguinInputError(f"databricks.yml: tasks depend on each other in a cycle: {key}")
        if key not in by_key:
            raise PenguinInputError(f"databricks.yml: a task depends on unknown task {key!r}")
        for dep in by_key[key].get("depends_on", []):
            visit(dep["task_key"], (*path, key))
        done.append(key)

    for task in tasks:
        visit(task["task_key"], ())
    return [by_key[k] for k in done]


def job_tasks(
    config: dict | None = None,
    overrides: dict[str, str] | None = None,
    target: str = "dev",
    job: str = JOB,
    root: Path | None = None,
) -> list[Task]:
    """The job's notebook tasks in dependency order, with their resolved ``base_parameters``."""
    config = config if config is not None else load_bundle()
    root = root or project_root()
    if target not in config.get("targets", {}):
        raise PenguinInputError(f"--target {target!r}: not a target of databricks.yml")
    variables = variable_values(config, overrides or {}, target)
    context = bundle_context(config, target)
    spec = config["resources"]["jobs"][job]
    tasks = []
    for task in ordered_tasks(spec["tasks"]):
        notebook = task["notebook_task"]
        params = {
            name: resolve(value, variables, context)
            for name, value in (notebook.get("base_parameters") or {}).items()
        }
        tasks.append(
            Task(
                key=task["task_key"],
                notebook=(root / notebook["notebook_path"]).resolve(),
                params=params,
                depends_on=[d["task_key"] for d in task.get("depends_on", [])],
            )
        )
    return tasks

"""``penguins submit``: start the deployed training job on Databricks; with ``--wait``, follow it.

The job is the bundle resource ``penguin_training`` in databricks.yml, named
``penguin-training-<target>``. A target in development mode deploys it as
``[dev <short user name>] penguin-training-<target>``; both forms are found.

Needs the optional extra ``pip install 'penguin-classifier[submit]'`` (databricks-sdk) and the usual
Databricks authentication: ``--profile`` from ~/.databrickscfg, or the SDK's default chain
(``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``, among others).

Exit status: 0 the run started (with ``--wait``: it succeeded); 1 no such job, more than one, the
run failed, or waiting timed out; 2 databricks-sdk is missing, or Databricks refused the
configuration, the credentials or a request.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable

PROG = "penguins submit"
INSTALL_HINT = "pip install 'penguin-classifier[submit]'"

# Life cycle states after which a run does not change (RunLifeCycleState in the Jobs API).
TERMINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
# Task results that are a cause of failure; UPSTREAM_FAILED and the like are only consequences.
FAILED_TASK_RESULTS = frozenset({"FAILED", "TIMEDOUT", "CANCELED"})

# `mode: development` prefixes every resource name with "[dev <short name>] "
# (bundle/config/mutator/process_target_mode.go in databricks/cli).
_DEV_PREFIX = re.compile(r"^\[dev (?P<user>[^\]]+)\] (?P<name>.+)$")


class SubmitError(Exception):
    """A one-line reason to stop, with the exit status to stop with."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def job_name(target: str) -> str:
    """The job's name in databricks.yml, ``penguin-training-${bundle.target}``, before prefixes."""
    return f"penguin-training-{target}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``penguins submit`` options to ``parser``."""
    parser.add_argument(
        "--target",
        "-t",
        default="dev",
        help="bundle target the job was deployed with (default: %(default)s)",
    )
    parser.add_argument(
        "--wait", action="store_true", help="follow the run until it ends; exit 1 if it fails"
    )
    parser.add_argument(
        "--profile", default=None, help="Databricks CLI profile (default: the SDK's default auth)"
    )
    parser.add_argument(
        "--job-name",
        default=None,
        help="job name to look for instead of penguin-training-<target>",
    )
    parser.add_argument(
        "--poll-seconds",
        type=_non_negative,
        default=10.0,
        help="seconds between status checks with --wait (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout-minutes",
        type=_non_negative,
        default=60.0,
        help="stop waiting after this long; the run is not cancelled (default: %(default)s)",
    )


def main(args: argparse.Namespace, client=None) -> int:
    """Start the training job and, with ``args.wait``, follow it; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        Options added by :func:`add_arguments`.
    client : databricks.sdk.WorkspaceClient, optional
        A client to use instead of one built from ``args.profile`` or the default auth chain.

    Returns
    -------
    int
        0, 1 or 2 as the module docstring describes. Progress goes to stdout; a failure is one
        line on stderr, never a traceback.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="penguins submit")
    >>> add_arguments(parser)
    >>> main(parser.parse_args(["--target", "dev", "--wait"]))  # doctest: +SKIP
    """
    try:
        from databricks.sdk.errors import DatabricksError, PermissionDenied, Unauthenticated
    except ImportError:
        return _fail(f"databricks-sdk is not installed; install it with: {INSTALL_HINT}", 2)
    import requests

    _quiet_sdk_warnings()
    if client is None:
        try:
            client = _connect(args.profile)
        except ValueError as e:  # the SDK's config errors: no host, no credentials, no profile
            return _fail(f"authentication failed for {_configured_host(args)}: {_one_line(e)}", 2)
    host = client.config.host
    try:
        return _submit(client, args)
    except SubmitError as e:
        return _fail(str(e), e.status)
    except KeyboardInterrupt:
        return _fail("interrupted; a run that was started goes on", 130)
    except (Unauthenticated, PermissionDenied) as e:
        return _fail(f"authentication failed for {host}: {_one_line(e)}", 2)
    except DatabricksError as e:
        return _fail(f"request to {host} failed: {_one_line(e)}", 2)
    except (requests.RequestException, TimeoutError) as e:
        return _fail(f"cannot reach {host}: {_one_line(e)}", 2)
    except OSError as e:  # credential providers raise IOError when they cannot get a token
        return _fail(f"authentication failed for {host}: {_one_line(e)}", 2)


def _submit(w, args: argparse.Namespace) -> int:
    name = args.job_name or job_name(args.target)
    job_id, full_name = _find_job(w, name, args.target)
    print(f"Job {full_name!r} (job {job_id}) on {w.config.host}", flush=True)

    run_id = w.jobs.run_now(job_id=job_id).run_id
    run = w.jobs.get_run(run_id)
    url = run.run_page_url or f"{w.config.host}/jobs/{job_id}/runs/{run_id}"
    print(f"Started run {run_id}: {url}", flush=True)
    if not args.wait:
        print("Not waiting; follow the run at the URL above.", flush=True)
        return 0
    return _follow(w, run, url, args.poll_seconds, args.timeout_minutes)


def _find_job(w, name: str, target: str) -> tuple[int, str]:
    jobs = [(job.job_id, job.settings.name) for job in w.jobs.list(limit=100) if job.settings]
    matches = matching_jobs(jobs, name)
    if not matches:
        raise SubmitError(
            f"no job named {name!r} in {w.config.host}; "
            f"deploy it first with `databricks bundle deploy -t {target}`"
        )
    if len(matches) == 1:
        return matches[0]
    me = w.current_user.me()
    short = short_user_name(me.user_name or "", me.display_name)
    mine = [(job_id, full) for job_id, full in matches if _dev_user(full) == short]
    if len(mine) == 1:
        return mine[0]
    listed = ", ".join(f"{full!r} (job {job_id})" for job_id, full in matches)
    raise SubmitError(
        f"{len(matches)} jobs match {name!r} and {len(mine)} of them are yours ({short}): "
        f"{listed}; pass --job-name with the full name of one"
    )


def matching_jobs(jobs: Iterable[tuple[int, str]], name: str) -> list[tuple[int, str]]:
    """The ``(job_id, name)`` pairs named ``name`` exactly or ``[dev <anyone>] name``."""
    return [(job_id, full) for job_id, full in jobs if full == name or _undev(full) == name]


def short_user_name(user_name: str, display_name: str | None = None) -> str:
    """The short name the Databricks CLI puts in ``[dev <short name>]``.

    The part of the user name before ``@``, lower case, every run of characters that are not
    letters or digits turned into one ``_``, with none at either end (``GetShortUserName`` in
    databricks/cli libs/iamutil). A service principal's user name is its application id, so its
    display name is used instead.

    >>> short_user_name("Jane.Doe-Smith@example.com")
    'jane_doe_smith'
    """
    name = display_name if display_name and _is_uuid(user_name) else user_name
    local = name.split("@", 1)[0].lower()
    return re.sub(r"_+", "_", "".join(c if c.isalnum() else "_" for c in local)).strip("_")


def _follow(w, run, url: str, poll_seconds: float, timeout_minutes: float) -> int:
    print(
        f"Waiting for run {run.run_id} (checking every {poll_seconds:g} s, "
        f"for at most {timeout_minutes:g} min)",
        flush=True,
    )
    deadline = time.monotonic() + timeout_minutes * 60
    seen: dict[str, tuple[str, str | None]] = {}
    while True:
        for task in run.tasks or []:
            life, result, _ = state_of(task)
            if seen.get(task.task_key) != (life, result):
                seen[task.task_key] = (life, result)
                print(f"  {task.task_key}: {life}" + (f" / {result}" if result else ""), flush=True)
        life, result, message = state_of(run)
        if life in TERMINAL_STATES:
            break
        if time.monotonic() >= deadline:
            raise SubmitError(
                f"run {run.run_id} still {life} after {timeout_minutes:g} min; "
                f"stopped waiting, the run was not cancelled: {url}"
            )
        time.sleep(poll_seconds)
        run = w.jobs.get_run(run.run_id)
    if result == "SUCCESS":
        print(f"Run {run.run_id} succeeded.", flush=True)
        return 0
    raise SubmitError(f"run {run.run_id} {result or life}: {failure_summary(run, message)}")


def failure_summary(run, run_message: str | None = None) -> str:
    """Which tasks failed and why, on one line; the run's own message when no task says."""
    failed = []
    for task in run.tasks or []:
        life, result, message = state_of(task)
        if result in FAILED_TASK_RESULTS or life == "INTERNAL_ERROR":
            failed.append(f"task {task.task_key} {result or life}: {_one_line(message or '')}")
    if failed:
        return "; ".join(failed)
    return _one_line(run_message or "no message from Databricks")


def state_of(run_or_task) -> tuple[str, str | None, str | None]:
    """``(life_cycle_state, result_state, state_message)`` of a run or a task run.

    Reads ``state``; the Jobs API marks it deprecated in favour of ``status``, which is read when
    ``state`` is missing (its termination code is the result: SUCCESS, RUN_EXECUTION_ERROR, ...).
    """
    state = run_or_task.state
    if state is not None and state.life_cycle_state is not None:
        result = state.result_state.value if state.result_state else None
        return state.life_cycle_state.value, result, state.state_message
    status = run_or_task.status
    if status is None or status.state is None:
        return "UNKNOWN", None, None
    details = status.termination_details
    code = details.code.value if details and details.code else None
    return status.state.value, code, details.message if details else None


def _connect(profile: str | None):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(profile=profile) if profile else WorkspaceClient()


def _configured_host(args: argparse.Namespace) -> str:
    if os.environ.get("DATABRICKS_HOST"):
        return os.environ["DATABRICKS_HOST"]
    return f"profile {args.profile}" if args.profile else "the default Databricks configuration"


def _quiet_sdk_warnings() -> None:
    """Keep the SDK's logged warnings off stderr unless the caller configured logging.

    The SDK logs, for example, a warning when a workspace has no host metadata endpoint; with no
    handler anywhere Python prints it through ``logging.lastResort``, breaking one-line errors.
    """
    sdk_logger = logging.getLogger("databricks.sdk")
    if not sdk_logger.handlers:
        sdk_logger.addHandler(logging.NullHandler())


def _dev_user(full_name: str) -> str | None:
    match = _DEV_PREFIX.match(full_name)
    return match["user"] if match else None


def _undev(full_name: str) -> str | None:
    match = _DEV_PREFIX.match(full_name)
    return match["name"] if match else None


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return status


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value

"""``penguins submit``: start the deployed training job and follow it to its end (databricks-sdk).

The Python way to do ``databricks bundle run penguin_training -t dev``. It signs in as the SDK does
(``--profile``, else ``DATABRICKS_HOST`` and the rest of the default chain), finds the job the
current user deployed for ``--target`` (in development mode ``[dev <you>] ...``, created by you),
runs it, and prints each task's state changes. Exit status: 0 succeeded; 1 failed, timed out or
unreachable; 2 not signed in, not allowed or not deployed; 130 Ctrl-C (the run goes on).
"""

from __future__ import annotations

import configparser
import logging
import re
import sys
import uuid
from datetime import timedelta

from penguin_classifier.errors import PenguinInputError, PenguinRunError

from .arguments import positive_number

# The SDK retries an unreachable workspace for 5 minutes; give up after half a minute, and say so.
RETRY_SECONDS = 30


def add_arguments(parser) -> None:
    parser.add_argument("--target", "-t", default="dev", help="bundle target (default: dev)")
    parser.add_argument("--profile", help="Databricks CLI profile (default: the SDK's default)")
    parser.add_argument(
        "--timeout", type=positive_number, default=60, help="minutes to wait (default: 60)"
    )


def connect(profile: str | None):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config

    return WorkspaceClient(config=Config(profile=profile, retry_timeout_seconds=RETRY_SECONDS))


def main(args) -> int:
    """Start the job and follow it: 0 if it succeeded, 130 on Ctrl-C; else one-line errors."""
    try:
        from databricks.sdk import errors
    except ImportError:
        raise PenguinInputError("needs databricks-sdk: pip install databricks-sdk") from None
    name, development = job_name(args.target)
    # The SDK logs warnings (an unreachable host, ...) that would break the one-line errors.
    logging.getLogger("databricks.sdk").addHandler(logging.NullHandler())
    try:
        w = connect(args.profile)
    except ValueError as e:  # no host, no credentials, `az` not signed in, an unknown profile
        raise PenguinInputError(f"not signed in: {one_line(e)}") from None
    except configparser.Error as e:  # a malformed ~/.databrickscfg: its message names it
        raise PenguinInputError(f"malformed Databricks config file: {one_line(e)}") from None
    host, url = w.config.host, None
    try:
        job_id, name = find_job(w, args.target, name, development)
        waiter = w.jobs.run_now(job_id, idempotency_token=str(uuid.uuid4()))
        url = f"{host}/jobs/{job_id}/runs/{waiter.run_id}"
        print(f"Started {name!r}: {url}", flush=True)
        show = task_printer()
        run = waiter.result(timeout=timedelta(minutes=args.timeout), callback=show)
        show(run)  # the waiter returns the last state without calling back
        result = (run.state.result_state or run.state.life_cycle_state).value  # SKIPPED: no result
        if result != "SUCCESS":
            raise PenguinRunError(f"run {result}: {failure(w, run)}: {url}")
    except KeyboardInterrupt:
        print(f"penguins submit: stopped waiting; {goes_on(url)}", file=sys.stderr)
        return 130
    except errors.Unauthenticated as e:
        raise PenguinInputError(f"not signed in to {host}: {one_line(e)}") from None
    except errors.PermissionDenied as e:
        raise PenguinInputError(f"not allowed on {host}: {one_line(e)}") from None
    except errors.OperationFailed as e:  # the run ended in INTERNAL_ERROR
        raise PenguinRunError(f"run failed: {one_line(e)}: {url}") from None
    except TimeoutError as e:  # the waiter's own, or the SDK's retries (raised from the last error)
        message = f"still running after {args.timeout:g} min; {goes_on(url)}"
        if e.__cause__:
            message = f"cannot reach {host} (gave up after {RETRY_SECONDS} s): {e.__cause__}"
        raise PenguinRunError(one_line(message)) from None
    except errors.DatabricksError as e:
        raise PenguinRunError(f"{host} answered: {one_line(e)}; {goes_on(url)}") from None
    print(f"Run succeeded: {url}")
    return 0


def job_name(target: str) -> tuple[str, bool]:
    """The job's name in databricks.yml for ``target``, and whether that is development mode."""
    from .bundle import JOB, load_bundle

    bundle = load_bundle()
    targets = bundle.get("targets") or {}
    if target not in targets:
        raise PenguinInputError(f"--target {target}: not in databricks.yml ({', '.join(targets)})")
    name = bundle["resources"]["jobs"][JOB]["name"].replace("${bundle.target}", target)
    return name, (targets[target] or {}).get("mode") == "development"


def find_job(w, target: str, name: str, development: bool) -> tuple[int, str]:
    """The id and full name of the job the current user deployed for ``target``."""
    me = w.current_user.me() if development else None
    if me:  # development mode prefixes every name
        name = f"[dev {short_user_name(me)}] {name}"
    # Exact names only, and in development mode only jobs you created: never another user's.
    jobs = [j for j in w.jobs.list(name=name) if me is None or j.creator_user_name == me.user_name]
    if len(jobs) != 1:
        found = f"{len(jobs)} jobs named" if jobs else "no job"
        deploy = f"`databricks bundle deploy -t {target}` deploys it"
        raise PenguinInputError(f"{found} {name!r} in {w.config.host}; {deploy}")
    return jobs[0].job_id, name


def short_user_name(user) -> str:
    """``[dev <name>]``'s name: GetShortUserName in databricks/cli libs/iamutil (a service
    principal, whose user name is a UUID, goes by its display name)."""
    principal = re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", user.user_name, re.I)
    name = user.display_name if principal and user.display_name else user.user_name
    return re.sub(r"[\W_]+", "_", name.split("@")[0].lower()).strip("_")


def task_printer():
    """A waiter callback that prints a task's state whenever it changes."""
    seen: dict[str, str] = {}

    def show(run) -> None:
        for task in run.tasks or []:
            state = task.state
            parts = (state.life_cycle_state, state.result_state) if state else ()
            now = " ".join(part.value for part in parts if part) or "PENDING"
            if seen.get(task.task_key) != now:
                seen[task.task_key] = now
                print(f"  {task.task_key}: {now}", flush=True)

    return show


def failure(w, run) -> str:
    """The first task that failed by itself (not upstream) and its error; else the run's message."""
    for task in run.tasks or []:
        result = task.state.result_state if task.state else None
        if result and result.value in ("FAILED", "TIMEDOUT", "CANCELED"):
            error = w.jobs.get_run_output(task.run_id).error or task.state.state_message
            return f"task {task.task_key} {result.value}: {one_line(error or 'no message')}"
    return one_line(run.state.state_message or "no message")


def goes_on(url: str | None) -> str:
    return f"the run goes on: {url}" if url else "no run was started"


def one_line(error: object) -> str:
    return " ".join(str(error).split())

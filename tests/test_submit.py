"""``penguins submit`` against ``create_autospec(WorkspaceClient)``: no workspace, no HTTP.

The Jobs API is spec'd from the SDK (a wrong method or argument fails the test), ``run_now``
returns the SDK's own ``Wait`` around a stand-in for its waiter, and runs are the SDK's classes.
Each test goes through ``penguins submit`` itself, so exit statuses and one-line errors are real.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from unittest.mock import create_autospec

import pytest
import requests

# `penguins submit` runs on your machine with the `submit` extra; ML runtimes up to 16.4 LTS ship
# an older SDK (make test-runtime RUNTIME=15.4 or 16.4 runs the suite with it).
pytest.importorskip(
    "databricks.sdk.mixins.jobs",
    reason="penguins submit needs databricks-sdk >= 0.38 (the submit extra); this one is older",
)
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied, Unauthenticated
from databricks.sdk.mixins.jobs import JobsExt
from databricks.sdk.service._internal import Wait
from databricks.sdk.service.iam import User
from databricks.sdk.service.jobs import (
    BaseJob,
    JobSettings,
    Run,
    RunOutput,
    RunState,
    RunTask,
)
from databricks.sdk.service.jobs import RunLifeCycleState as Life
from databricks.sdk.service.jobs import RunResultState as Result

from penguins import cli, submit

HOST = "https://adb-0000000000000000.0.azuredatabricks.net"  # made up
URL = f"{HOST}/jobs/3/runs/77"


def job(job_id, name, creator):
    return BaseJob(job_id=job_id, creator_user_name=creator, settings=JobSettings(name=name))


JOBS = [  # what jobs/list holds; the API filters it by exact name
    job(1, "[dev jane_doe] penguin-training-dev", "jane_doe@other.org"),  # same short name
    job(2, "[dev bob] penguin-training-dev", "bob@example.com"),
    job(3, "[dev jane_doe] penguin-training-dev", "jane.doe@example.com"),  # the current user's
    job(4, "penguin-training-prod", "deployer@example.com"),
]


def state(life, result=None, message=""):
    return RunState(life_cycle_state=life, result_state=result, state_message=message)


def run(run_state, **tasks):
    """A runs/get answer for run 77, with task runs 100, 101, ... in the order given."""
    task_runs = [
        RunTask(task_key=k, run_id=100 + i, state=s) for i, (k, s) in enumerate(tasks.items())
    ]
    return Run(run_id=77, state=run_state, tasks=task_runs)


def unreachable():
    """How the SDK's retries give up: a TimeoutError raised from the last connection error."""
    error = TimeoutError("Timed out after 0:00:30")
    error.__cause__ = requests.ConnectionError("Connection refused")
    return error


@pytest.fixture
def workspace(monkeypatch):
    """The mocked workspace ``penguins submit`` connects to, as jane.doe@example.com."""
    w = create_autospec(WorkspaceClient, instance=True)
    w.jobs = create_autospec(JobsExt, instance=True)
    w.config.host = HOST
    w.current_user.me.return_value = User(user_name="jane.doe@example.com")
    w.jobs.list.side_effect = lambda name=None, **_: [j for j in JOBS if j.settings.name == name]
    w.polls = []  # what the waiter sees, in order; the last one ends the run
    w.seen = {}

    def waiter(callback, timeout, run_id):
        w.seen.update(timeout=timeout, run_id=run_id)
        for poll in w.polls:
            if isinstance(poll, BaseException):
                raise poll
            if poll is not w.polls[-1]:
                callback(poll)
        return w.polls[-1]

    w.jobs.run_now.return_value = Wait(waiter, run_id=77)
    monkeypatch.setattr(submit, "connect", lambda profile: w)
    return w


def penguins_submit(capsys, *args):
    status = cli.main(["submit", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_it_starts_the_current_users_dev_job_and_prints_each_task_change(workspace, capsys):
    workspace.polls = [
        run(state(Life.RUNNING), ingest=state(Life.RUNNING), train=state(Life.PENDING)),
        run(state(Life.RUNNING), ingest=state(Life.RUNNING), train=state(Life.PENDING)),
        run(
            state(Life.TERMINATED, Result.SUCCESS),
            ingest=state(Life.TERMINATED, Result.SUCCESS),
            train=state(Life.TERMINATED, Result.SUCCESS),
        ),
    ]
    status, out, err = penguins_submit(capsys)
    assert (status, err) == (0, [])
    assert out == [  # the second poll changed nothing, so it printed nothing
        f"Started '[dev jane_doe] penguin-training-dev': {URL}",
        "  ingest: RUNNING",
        "  train: PENDING",
        "  ingest: TERMINATED SUCCESS",
        "  train: TERMINATED SUCCESS",
        f"Run succeeded: {URL}",
    ]
    ((job_id,), kwargs) = workspace.jobs.run_now.call_args
    assert job_id == 3 and uuid.UUID(kwargs["idempotency_token"])
    assert workspace.seen == {"timeout": timedelta(minutes=60), "run_id": 77}


@pytest.mark.parametrize(
    "user_name",
    [
        "carol@example.com",  # no job of hers at all, only bob's and jane's
        "jane.doe@other.org",  # short name jane_doe too, but both of those jobs are someone else's
    ],
)
def test_it_never_starts_another_users_job(workspace, capsys, user_name):
    workspace.current_user.me.return_value = User(user_name=user_name)
    status, out, err = penguins_submit(capsys)
    short = submit.short_user_name(User(user_name=user_name))
    assert (status, out) == (2, [])
    assert err == [
        f"penguins submit: no job '[dev {short}] penguin-training-dev' in {HOST};"
        " `databricks bundle deploy -t dev` deploys it"
    ]
    workspace.jobs.run_now.assert_not_called()


def test_an_unknown_target_is_bad_input_before_signing_in(monkeypatch, capsys):
    monkeypatch.setattr(submit, "connect", None)  # not called
    status, _, err = penguins_submit(capsys, "--target", "nope")
    assert status == 2 and err[0].startswith(
        "penguins submit: --target nope: not in databricks.yml"
    )


def test_a_production_target_has_no_user_prefix(workspace, capsys):
    workspace.polls = [run(state(Life.TERMINATED, Result.SUCCESS))]
    status, out, _ = penguins_submit(capsys, "--target", "prod")
    assert status == 0 and out[0] == f"Started 'penguin-training-prod': {HOST}/jobs/4/runs/77"
    workspace.current_user.me.assert_not_called()


def test_a_failed_run_names_the_task_that_failed_and_its_error(workspace, capsys):
    workspace.polls = [
        run(
            state(Life.TERMINATED, Result.FAILED),
            ingest=state(Life.TERMINATED, Result.SUCCESS),
            prepare=state(Life.TERMINATED, Result.FAILED, "Workload failed, see run output"),
            model=state(Life.TERMINATED, Result.UPSTREAM_FAILED),  # a consequence, not the cause
        )
    ]
    workspace.jobs.get_run_output.return_value = RunOutput(error="ValueError: test_fraction 2")
    status, _, err = penguins_submit(capsys)
    assert status == 1
    assert err == [
        f"penguins submit: run FAILED: task prepare FAILED: ValueError: test_fraction 2: {URL}"
    ]
    workspace.jobs.get_run_output.assert_called_once_with(101)  # prepare's task run


@pytest.mark.parametrize(
    ("fails", "error", "status", "message"),
    [
        ("me", Unauthenticated("Invalid access token."), 2, f"not signed in to {HOST}: Invalid"),
        ("run_now", PermissionDenied("needs CAN MANAGE RUN"), 2, f"not allowed on {HOST}: needs"),
        ("list", unreachable(), 1, f"cannot reach {HOST} (gave up after 30 s): Connection refused"),
    ],
)
def test_errors_are_one_line_each(workspace, capsys, fails, error, status, message):
    api = workspace.current_user if fails == "me" else workspace.jobs
    getattr(api, fails).side_effect = error
    status_, out, err = penguins_submit(capsys)
    assert status_ == status
    assert len(err) == 1 and err[0].startswith(f"penguins submit: {message}")


@pytest.mark.parametrize(
    ("interruption", "status", "message"),
    [
        (TimeoutError("timed out after 0:01:00"), 1, "still running after 1 min;"),
        (KeyboardInterrupt(), 130, "stopped waiting;"),
    ],
)
def test_when_it_stops_waiting_it_says_the_run_goes_on(
    workspace, capsys, interruption, status, message
):
    workspace.polls = [run(state(Life.RUNNING), ingest=state(Life.RUNNING)), interruption]
    status_, out, err = penguins_submit(capsys, "--timeout", "1")
    assert status_ == status and out[-1] == "  ingest: RUNNING"
    assert err == [f"penguins submit: {message} the run goes on: {URL}"]  # and no traceback


def test_not_signed_in_anywhere_is_one_line(monkeypatch, tmp_path, capsys):
    # The real connect, with nothing configured.
    for name in [k for k in os.environ if k.startswith(("DATABRICKS_", "ARM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none"))
    status, _, err = penguins_submit(capsys)
    assert status == 2 and len(err) == 1 and err[0].startswith("penguins submit: not signed in: ")


def test_connect_gives_up_on_an_unreachable_workspace_after_30_seconds(monkeypatch):
    monkeypatch.setattr("databricks.sdk.config.Config", lambda **kwargs: kwargs)
    monkeypatch.setattr("databricks.sdk.WorkspaceClient", lambda config: config)
    assert submit.connect("penguins") == {"profile": "penguins", "retry_timeout_seconds": 30}


@pytest.mark.parametrize(
    ("user", "short"),
    [
        (User(user_name="Jane.Doe-Smith@example.com"), "jane_doe_smith"),
        (User(user_name="__a..b__@example.com"), "a_b"),
        # A service principal's user name is its application id: its display name counts.
        (User(user_name="8f1c3e2a-0b6d-4c3f-9a7e-2d5b6c7d8e9f", display_name="CI Bot"), "ci_bot"),
    ],
)
def test_short_user_name_is_the_clis(user, short):
    assert submit.short_user_name(user) == short

"""``penguins submit`` against a local fake of the few Jobs API calls it makes.

A real ``http.server`` on 127.0.0.1 answers the paths databricks-sdk uses (checked against the
installed SDK: /api/2.2/jobs/list, /api/2.2/jobs/run-now, /api/2.2/jobs/runs/get,
/api/2.0/preview/scim/v2/Me) with bodies shaped like the Jobs API reference. A real
WorkspaceClient talks to it, built by ``submit.main`` from DATABRICKS_HOST and DATABRICKS_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("databricks.sdk")

from penguin_classifier import submit  # noqa: E402

TOKEN = "dapi-test-not-a-secret"
WORKSPACE_ID = "1234567890123456"


def run_state(life, result=None, message=""):
    """A RunState; result_state is only there once the run or task has ended."""
    state = dict(life_cycle_state=life, state_message=message, user_cancelled_or_timedout=False)
    if result:
        state["result_state"] = result
    return state


def task_run(task_key, *state):
    """A task run as runs/get returns it (RunTask); ids are made up."""
    return {"task_key": task_key, "run_id": 900, "attempt_number": 0, "state": run_state(*state)}


def run_snapshot(host, life, result=None, message="", tasks=()):
    """One runs/get answer for run 455644833 of job 11223344, shaped like the Jobs API reference."""
    state = run_state(life, result, message)
    return {
        "job_id": 11223344,
        "run_id": 455644833,
        "number_in_job": 455644833,
        "original_attempt_run_id": 455644833,
        "creator_user_name": "alice@example.com",
        "run_name": "[dev alice] penguin-training-dev",
        "run_type": "JOB_RUN",
        "trigger": "ONE_TIME",
        "start_time": 1700000000000,
        "run_page_url": f"{host}/?o={WORKSPACE_ID}#job/11223344/run/455644833",
        "state": state,
        "tasks": list(tasks),
    }


def job(job_id, name):
    """One jobs/list entry (BaseJob)."""
    return {
        "job_id": job_id,
        "creator_user_name": "alice@example.com",
        "created_time": 1700000000000,
        "settings": {"name": name, "format": "MULTI_TASK", "max_concurrent_runs": 4},
    }


class FakeWorkspace:
    """What the server answers, and what it was asked."""

    def __init__(self):
        self.host = ""
        self.jobs = []
        self.page_size = 100
        self.snapshots = []  # runs/get answers in order; the last one repeats
        self.user_name = "alice@example.com"
        self.reject_token = False
        self.requests = []  # (method, path, query or body)

    def calls(self, method, path):
        return [r for r in self.requests if r[0] == method and r[1] == path]

    def answer(self, method, path, query, body, authorization):
        if path.startswith("/api/") and (self.reject_token or authorization != f"Bearer {TOKEN}"):
            return 401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
        if (method, path) == ("GET", "/api/2.2/jobs/list"):
            start = int(query.get("page_token", "0"))
            end = start + min(int(query.get("limit", "20")), self.page_size)
            page = {"jobs": self.jobs[start:end], "has_more": end < len(self.jobs)}
            if end < len(self.jobs):
                page["next_page_token"] = str(end)
            return 200, page
        if (method, path) == ("POST", "/api/2.2/jobs/run-now"):
            return 200, {"run_id": 455644833, "number_in_job": 455644833}
        if (method, path) == ("GET", "/api/2.2/jobs/runs/get"):
            done = len(self.calls("GET", path)) - 1
            return 200, self.snapshots[min(done, len(self.snapshots) - 1)]
        if (method, path) == ("GET", "/api/2.0/preview/scim/v2/Me"):
            return 200, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "7654321098765432",
                "userName": self.user_name,
                "displayName": "Alice Example",
                "active": True,
                "emails": [{"type": "work", "value": self.user_name, "primary": True}],
            }
        # Includes /.well-known/databricks-config, which the SDK probes and may do without.
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for {path}"}


class Handler(BaseHTTPRequestHandler):
    def _serve(self, method):
        fake = self.server.fake
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        fake.requests.append((method, url.path, body if method == "POST" else query))
        status, payload = fake.answer(
            method, url.path, query, body, self.headers.get("Authorization")
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    """A fake workspace on an ephemeral port, and an environment whose only auth points at it.

    Every DATABRICKS_* variable is cleared and the config file is one that does not exist, so the
    SDK's default chain finds exactly DATABRICKS_HOST and DATABRICKS_TOKEN.
    """
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.fake = FakeWorkspace()
    server.fake.host = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "AZURE_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("DATABRICKS_HOST", server.fake.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    yield server.fake
    server.shutdown()
    server.server_close()


def parse(*argv):
    parser = argparse.ArgumentParser(prog="penguins submit")
    submit.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults():
    args = parse()
    assert (args.target, args.wait, args.profile, args.job_name) == ("dev", False, None, None)
    assert (args.poll_seconds, args.timeout_minutes) == (10.0, 60.0)


def test_wait_follows_tasks_until_success(workspace, capsys):
    host = workspace.host
    workspace.jobs = [job(11223344, "[dev alice] penguin-training-dev")]
    workspace.snapshots = [
        run_snapshot(host, "PENDING", tasks=[task_run("prepare", "PENDING")]),
        run_snapshot(host, "RUNNING", tasks=[task_run("prepare", "RUNNING")]),
        # Same states again: nothing new is printed.
        run_snapshot(host, "RUNNING", tasks=[task_run("prepare", "RUNNING")]),
        run_snapshot(
            host,
            "RUNNING",
            tasks=[task_run("prepare", "TERMINATED", "SUCCESS"), task_run("train", "RUNNING")],
        ),
        run_snapshot(
            host,
            "TERMINATED",
            "SUCCESS",
            tasks=[
                task_run("prepare", "TERMINATED", "SUCCESS"),
                task_run("train", "TERMINATED", "SUCCESS"),
            ],
        ),
    ]

    status = submit.main(parse("--wait", "--poll-seconds", "0"))

    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"Job '[dev alice] penguin-training-dev' (job 11223344) on {host}",
        f"Started run 455644833: {host}/?o={WORKSPACE_ID}#job/11223344/run/455644833",
        "Waiting for run 455644833 (checking every 0 s, for at most 60 min)",
        "  prepare: PENDING",
        "  prepare: RUNNING",
        "  prepare: TERMINATED / SUCCESS",
        "  train: RUNNING",
        "  train: TERMINATED / SUCCESS",
        "Run 455644833 succeeded.",
    ]
    assert workspace.calls("POST", "/api/2.2/jobs/run-now") == [
        ("POST", "/api/2.2/jobs/run-now", {"job_id": 11223344})
    ]
    # One runs/get for the URL, then one per poll until TERMINATED.
    assert len(workspace.calls("GET", "/api/2.2/jobs/runs/get")) == 5


def test_without_wait_starts_once_and_returns(workspace, capsys):
    workspace.jobs = [job(5, "some-other-job"), job(11223344, "penguin-training-dev")]
    workspace.snapshots = [run_snapshot(workspace.host, "PENDING")]

    status = submit.main(parse())

    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines()[-1] == "Not waiting; follow the run at the URL above."
    assert len(workspace.calls("POST", "/api/2.2/jobs/run-now")) == 1
    assert len(workspace.calls("GET", "/api/2.2/jobs/runs/get")) == 1


def test_failed_task_is_named_with_its_message(workspace, capsys):
    host = workspace.host
    workspace.jobs = [job(11223344, "[dev alice] penguin-training-dev")]
    workspace.snapshots = [
        run_snapshot(host, "RUNNING", tasks=[task_run("train", "RUNNING")]),
        run_snapshot(
            host,
            "TERMINATED",
            "FAILED",
            message="",
            tasks=[
                task_run("train", "TERMINATED", "FAILED", "Workload failed, see run output"),
                # A consequence, not a cause: not named.
                task_run("evaluate", "TERMINATED", "UPSTREAM_FAILED", "Upstream failed"),
            ],
        ),
    ]

    status = submit.main(parse("--wait", "--poll-seconds", "0"))

    out, err = capsys.readouterr()
    assert status == 1
    assert err == (
        "penguins submit: run 455644833 FAILED: "
        "task train FAILED: Workload failed, see run output\n"
    )
    assert "  train: TERMINATED / FAILED" in out.splitlines()


def test_timeout_stops_waiting_without_cancelling(workspace, capsys):
    workspace.jobs = [job(11223344, "penguin-training-dev")]
    workspace.snapshots = [run_snapshot(workspace.host, "RUNNING")]

    status = submit.main(parse("--wait", "--poll-seconds", "0", "--timeout-minutes", "0"))

    _, err = capsys.readouterr()
    assert status == 1
    assert re.fullmatch(
        r"penguins submit: run 455644833 still RUNNING after 0 min; "
        r"stopped waiting, the run was not cancelled: http://\S+\n",
        err,
    )
    # Only the Jobs calls made so far: no runs/cancel.
    assert {path for _, path, _ in workspace.requests if path.startswith("/api/")} == {
        "/api/2.2/jobs/list",
        "/api/2.2/jobs/run-now",
        "/api/2.2/jobs/runs/get",
    }


def test_job_not_deployed(workspace, capsys):
    workspace.jobs = [job(5, "penguin-training-prod"), job(6, "[dev alice] penguin-training-dev2")]

    status = submit.main(parse("--wait"))

    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    assert err == (
        f"penguins submit: no job named 'penguin-training-dev' in {workspace.host}; "
        "deploy it first with `databricks bundle deploy -t dev`\n"
    )
    assert workspace.calls("POST", "/api/2.2/jobs/run-now") == []


def test_dev_prefix_of_current_user_wins_across_pages(workspace, capsys):
    workspace.page_size = 1  # the SDK must follow next_page_token
    workspace.user_name = "Alice.Example@example.com"  # short name: alice_example
    workspace.jobs = [
        job(21, "[dev bob] penguin-training-dev"),
        job(22, "unrelated"),
        job(23, "[dev alice_example] penguin-training-dev"),
    ]
    workspace.snapshots = [run_snapshot(workspace.host, "PENDING")]

    status = submit.main(parse())

    out, _ = capsys.readouterr()
    assert status == 0
    assert out.splitlines()[0].startswith("Job '[dev alice_example] penguin-training-dev' (job 23)")
    assert workspace.calls("POST", "/api/2.2/jobs/run-now")[0][2] == {"job_id": 23}


def test_several_matches_none_mine_lists_them(workspace, capsys):
    workspace.jobs = [job(21, "[dev bob] penguin-training-dev"), job(22, "penguin-training-dev")]

    status = submit.main(parse("--target", "dev"))

    _, err = capsys.readouterr()
    assert status == 1
    assert err == (
        "penguins submit: 2 jobs match 'penguin-training-dev' and 0 of them are yours (alice): "
        "'[dev bob] penguin-training-dev' (job 21), 'penguin-training-dev' (job 22); "
        "pass --job-name with the full name of one\n"
    )


def test_unauthenticated_is_one_line_and_status_2(workspace, capsys):
    workspace.reject_token = True

    status = submit.main(parse("--wait"))

    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    # The SDK appends the configuration it used, with the token masked.
    assert re.fullmatch(
        rf"penguins submit: authentication failed for {re.escape(workspace.host)}: "
        r"Invalid access token\. Config: host=\S+, token=\*\*\*, [^\n]*\n",
        err,
    )
    assert TOKEN not in err


# What a user's shell sees, outside pytest's capture and its logging handlers: the SDK's own
# warnings (here, no /.well-known/databricks-config) must not add lines to stderr.
CLI = (
    "import argparse, sys; from penguin_classifier import submit; "
    "p = argparse.ArgumentParser(prog='penguins submit'); submit.add_arguments(p); "
    "sys.exit(submit.main(p.parse_args(sys.argv[1:])))"
)


def test_unauthenticated_in_a_real_process(workspace):
    workspace.reject_token = True

    done = subprocess.run(
        [sys.executable, "-c", CLI, "--wait"], capture_output=True, text=True, timeout=60
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert re.fullmatch(r"penguins submit: authentication failed for [^\n]+\n", done.stderr)


def test_missing_host_is_one_line_and_status_2(workspace, monkeypatch, capsys):
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")

    status = submit.main(parse())

    _, err = capsys.readouterr()
    assert status == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "penguins submit: authentication failed for the default Databricks configuration: "
    )
    assert "Traceback" not in err


def test_profile_from_config_file(workspace, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    config = tmp_path / "databrickscfg"
    config.write_text(f"[penguins]\nhost = {workspace.host}\ntoken = {TOKEN}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    workspace.jobs = [job(11223344, "penguin-training-staging")]
    workspace.snapshots = [run_snapshot(workspace.host, "PENDING")]

    assert submit.main(parse("--profile", "penguins", "--target", "staging")) == 0
    assert capsys.readouterr().err == ""


def test_explicit_client_and_job_name(workspace, capsys):
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=workspace.host, token=TOKEN)
    workspace.jobs = [job(31, "my-penguins")]
    workspace.snapshots = [run_snapshot(workspace.host, "PENDING")]

    assert submit.main(parse("--job-name", "my-penguins"), client=client) == 0
    assert workspace.calls("POST", "/api/2.2/jobs/run-now")[0][2] == {"job_id": 31}


def test_without_sdk_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "databricks.sdk.errors", None)

    status = submit.main(parse())

    assert status == 2
    assert capsys.readouterr().err == (
        "penguins submit: databricks-sdk is not installed; "
        "install it with: pip install 'penguin-classifier[submit]'\n"
    )


@pytest.mark.parametrize(
    ("user_name", "display_name", "expected"),
    [
        ("alice@example.com", None, "alice"),
        # Dots, dashes and runs of them become one underscore; case is folded.
        ("Jane.Doe--Smith@example.com", None, "jane_doe_smith"),
        # A service principal's user name is its application id; the display name is used.
        ("6e9f4a3b-8c2d-4e1f-9a7b-0c5d3e2f1a4b", "CI Deployer", "ci_deployer"),
    ],
)
def test_short_user_name(user_name, display_name, expected):
    assert submit.short_user_name(user_name, display_name) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "must be 0 or more, got -1"), ("soon", "not a number: 'soon'")],
)
def test_bad_durations_are_rejected(value, message):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(message)}$"):
        submit._non_negative(value)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"state": run_state("RUNNING")}, ("RUNNING", None, "")),
        ({"state": run_state("TERMINATED", "FAILED", "boom")}, ("TERMINATED", "FAILED", "boom")),
        # Without the deprecated `state`, `status` answers; its termination code is the result.
        (
            {
                "status": {
                    "state": "TERMINATED",
                    "termination_details": {
                        "code": "RUN_EXECUTION_ERROR",
                        "type": "CLIENT_ERROR",
                        "message": "Task train failed with message: boom.",
                    },
                }
            },
            ("TERMINATED", "RUN_EXECUTION_ERROR", "Task train failed with message: boom."),
        ),
        ({}, ("UNKNOWN", None, None)),
    ],
)
def test_state_of(payload, expected):
    from databricks.sdk.service.jobs import Run

    assert submit.state_of(Run.from_dict(payload)) == expected

"""A Databricks serving endpoint, asked and deployed: every failure one line.

``penguins predict --endpoint`` runs against a local HTTP server standing in for a workspace
(``DATABRICKS_HOST=http://127.0.0.1:<port>``, a dummy token), so the SDK's own requests, retries
and error parsing meet a 429, an HTML page, an empty or garbled body. ``serving.deploy`` runs
against ``create_autospec(WorkspaceClient)`` with the SDK's own dataclasses.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import threading
import time
from unittest.mock import create_autospec

import mlflow
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, OperationFailed
from databricks.sdk.service.serving import (
    EndpointCoreConfigOutput,
    EndpointPendingConfig,
    EndpointState,
    EndpointStateConfigUpdate,
    EndpointStateReady,
    ServedEntityOutput,
    ServingEndpointDetailed,
)
from packaging.requirements import Requirement
from penguin_classifier import registry, serving
from penguin_classifier.errors import PenguinRunError

from penguins import submit
from penguins.cli import main

PREDICT = ["predict", "--island", "Biscoe", "--culmen-length", "48.7", "--culmen-depth", "14.1"]
PREDICT += ["--flipper-length", "210", "--body-mass", "4450", "--endpoint"]
READY = {"name": "predict-penguin", "state": {"ready": "READY", "config_update": "NOT_UPDATING"}}
ANSWER = {"species": "Gentoo", "probability_Adelie": 0.0, "probability_Chinstrap": 0.01,
          "probability_Gentoo": 0.99}  # fmt: skip
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"

# --- penguins predict --endpoint, against a stand-in workspace ----------------------------------


class Workspace(http.server.BaseHTTPRequestHandler):
    """The serving endpoint API: ``GET /api/2.0/serving-endpoints/<name>`` answers
    ``server.get``, ``POST /serving-endpoints/<name>/invocations`` ``server.query`` (each a
    ``(status, content type, body)``), anything else 404; ``server.paths`` keeps what was asked."""

    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.paths.append(self.path)
        if self.path.startswith("/api/2.0/serving-endpoints/"):
            status, kind, body = self.server.get
        elif self.path.startswith("/serving-endpoints/"):
            status, kind, body = self.server.query
        else:
            status, kind, body = 404, "application/json", '{"error_code": "NOT_FOUND"}'
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body.encode())))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    """The stand-in workspace, signed in to with a dummy token; the SDK gives up after 1 s."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Workspace)
    server.paths, server.get = [], (200, "application/json", json.dumps(READY))
    server.query = (200, "application/json", json.dumps({"predictions": [ANSWER]}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in [k for k in os.environ if k.startswith(("DATABRICKS_", "ARM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dummy")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(submit, "RETRY_SECONDS", 1)
    yield server
    server.shutdown()
    server.server_close()


def predict(capsys, endpoint="predict-penguin") -> tuple[int, str, list[str]]:
    status = main([*PREDICT, endpoint, "--json"])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def test_the_stand_in_workspace_answers_as_one(workspace, capsys):
    status, out, err = predict(capsys)
    assert (status, err) == (0, [])
    assert json.loads(out)["probabilities"] == {"Adelie": 0.0, "Chinstrap": 0.01, "Gentoo": 0.99}
    assert "/serving-endpoints/predict-penguin/invocations" in workspace.paths


def test_an_endpoint_name_that_is_a_path_is_refused_before_any_request(workspace, capsys):
    # Unchecked, the SDK sent GET /api/2.0/serving-endpoints/../../2.1/jobs/list with the token.
    status, _, err = predict(capsys, "../../2.1/jobs/list")
    assert status == 2
    assert err == [
        "penguins predict: --endpoint: '../../2.1/jobs/list' is not an endpoint name "
        "(letters, digits, - and _, at most 63)"
    ]
    assert workspace.paths == []


def test_notebook_08_checks_its_endpoint_name_with_the_same_rule(capsys, tmp_path):
    lab = str(tmp_path / "lab")
    status = main(["run", "--only", "serve", "--lab-dir", lab, "--param", "endpoint_name=a/../b"])
    assert status == 2
    assert capsys.readouterr().err == (
        "penguins run: serve: parameter endpoint_name: 'a/../b' is not an endpoint name "
        "(letters, digits, - and _, at most 63)\n"
    )


JSON = "application/json"


@pytest.mark.parametrize(
    ("get", "query", "message"),
    [
        # The SDK retries a 429 (after Retry-After) until its retry timeout, then gives up.
        ((429, JSON, '{"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}'), None,
         "{host} is limiting requests (429 Too Many Requests): slow down; try again in a minute"),
        # A proxy's error page: the SDK's message would carry the whole page.
        ((502, "text/html", HTML), None,
         "{host} answered HTTP 502 Bad Gateway, a body that is not JSON"),
        (None, (200, "text/html", "<html><body>Sign in</body></html>"),
         "{host} answered HTTP 200 with a body that is not JSON"),
        (None, (200, JSON, '{"predictions": [{"species": "Gent'),
         "{host} answered HTTP 200 with a body that is not JSON"),
        (None, (200, JSON, ""),
         "endpoint predict-penguin answered nothing, not a species and its probabilities for "
         "each record sent (1)"),
        (None, (200, JSON, '{"predictions": []}'),
         "endpoint predict-penguin answered [], not a species and its probabilities for each "
         "record sent (1)"),
        (None, (200, JSON, '{"predictions": [{"species": "Gentoo", "probability_Gentoo": "x"}]}'),
         "endpoint predict-penguin answered [{'species': 'Gentoo', 'probability_Gentoo': 'x'}], "
         "not a species and its probabilities for each record sent (1)"),
        (None, (200, JSON, '{"predictions": "Gentoo"}'),
         "endpoint predict-penguin answered Gentoo, not a species and its probabilities for each "
         "record sent (1)"),
    ],
)  # fmt: skip
def test_what_the_workspace_answers_is_one_line(workspace, capsys, get, query, message):
    workspace.get = get or workspace.get
    workspace.query = query or workspace.query
    status, out, err = predict(capsys)
    host = f"http://127.0.0.1:{workspace.server_port}"
    assert (status, out) == (2, "")
    assert err == [f"penguins predict: {message.replace('{host}', host)}"]  # and no traceback


def test_an_unreachable_workspace_is_one_line(workspace, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("DATABRICKS_HOST", host)
    start = time.monotonic()
    status, out, err = predict(capsys)
    waited = time.monotonic() - start
    assert (status, out, len(err)) == (2, "", 1)
    # The SDK retried for 1 s at least once (twice where it probes the host as it signs in).
    said = re.fullmatch(
        rf"penguins predict: cannot reach {re.escape(host)} \(gave up after (\d+) s\): .+", err[0]
    )
    assert said and 1 <= int(said[1]) <= round(waited)
    assert "Connection refused" in err[0]


# --- serving.deploy, on an autospec'd workspace client ------------------------------------------

MODEL = "main.default.penguin_classifier"
CHECK = "`databricks serving-endpoints get predict-penguin` shows its state"


def served(version: str) -> list[ServedEntityOutput]:
    return [ServedEntityOutput(entity_name=MODEL, entity_version=version)]


def client(current: ServingEndpointDetailed | None = None):
    w = create_autospec(WorkspaceClient, instance=True)
    w.serving_endpoints.get.side_effect = None if current else NotFound("no such endpoint")
    w.serving_endpoints.get.return_value = current
    return w


def endpoint(update: str, config: str | None = None, pending: str | None = None):
    """An endpoint serving version ``config`` (None: no first build yet), building ``pending``."""
    return ServingEndpointDetailed(
        name="predict-penguin",
        config=EndpointCoreConfigOutput(served_entities=served(config)) if config else None,
        pending_config=EndpointPendingConfig(served_entities=served(pending)) if pending else None,
        state=EndpointState(
            ready=EndpointStateReady.READY if config else EndpointStateReady.NOT_READY,
            config_update=EndpointStateConfigUpdate(update),
        ),
    )


@pytest.mark.parametrize(
    "current",
    [
        endpoint("UPDATE_FAILED", pending="2"),  # its first build failed: no config at all
        endpoint("UPDATE_FAILED", pending="3"),  # the same version failed before: build again
        endpoint("UPDATE_FAILED"),  # neither config nor pending config
        endpoint("NOT_UPDATING", config="2"),
    ],
)
def test_deploy_gives_an_endpoint_without_a_working_config_this_version(current):
    w = client(current)
    said = serving.deploy(w, "predict-penguin", MODEL, "3", True)
    assert said == f"endpoint predict-penguin now serves {MODEL} version 3"
    (entity,) = w.serving_endpoints.update_config_and_wait.call_args.kwargs["served_entities"]
    assert (entity.entity_name, entity.entity_version) == (MODEL, "3")


def test_deploy_waits_for_a_build_of_this_version_and_leaves_one_of_another_alone():
    w = client(endpoint("IN_PROGRESS", pending="3"))  # e.g. the build a timed-out deploy began
    said = serving.deploy(w, "predict-penguin", MODEL, "3", True)
    assert said == f"endpoint predict-penguin now serves {MODEL} version 3"
    w.serving_endpoints.wait_get_serving_endpoint_not_updating.assert_called_once()
    w.serving_endpoints.update_config_and_wait.assert_not_called()
    w = client(endpoint("IN_PROGRESS", config="1", pending="2"))
    with pytest.raises(PenguinRunError) as raised:
        serving.deploy(w, "predict-penguin", MODEL, "3", True)
    assert str(raised.value) == (
        f"endpoint predict-penguin is busy building another model version; run again when it is "
        f"done: {CHECK}"
    )
    w.serving_endpoints.update_config_and_wait.assert_not_called()


def test_deploy_leaves_an_endpoint_that_serves_this_version_as_it_is():
    w = client(endpoint("NOT_UPDATING", config="3"))
    said = serving.deploy(w, "predict-penguin", MODEL, "3", True)
    assert said == f"endpoint predict-penguin already serves {MODEL} version 3"
    w.serving_endpoints.update_config_and_wait.assert_not_called()


@pytest.mark.parametrize("current", [None, endpoint("NOT_UPDATING", config="2")])
@pytest.mark.parametrize(
    ("error", "message"),
    [
        # What the SDK's waiters raise: TimeoutError(f"timed out after {timeout}: ...").
        (TimeoutError("timed out after 0:30:00: current status: IN_PROGRESS"),
         f"endpoint predict-penguin is still building {MODEL} version 3 after 30 min; {CHECK}"),
        (OperationFailed("failed to reach NOT_UPDATING, got UPDATE_FAILED: current status: x"),
         f"endpoint predict-penguin did not build {MODEL} version 3 (failed to reach "
         f"NOT_UPDATING, got UPDATE_FAILED: current status: x); {CHECK}"),
    ],
)  # fmt: skip
def test_a_build_that_outlasts_the_wait_or_fails_is_one_line(current, error, message):
    w = client(current)
    w.serving_endpoints.create_and_wait.side_effect = error
    w.serving_endpoints.update_config_and_wait.side_effect = error
    with pytest.raises(PenguinRunError) as raised:
        serving.deploy(w, "predict-penguin", MODEL, "3", True)
    assert str(raised.value) == message


# --- the model's requirements: a CPU torch where the index can be reached -----------------------


def test_the_registered_model_asks_for_a_cpu_torch_of_its_version(record):
    # Model Serving pip-installs requirements.txt: the CPU index first, then torch pinned to its
    # version without a build label, which 2.x.y+cpu (the CPU index's build) satisfies.
    model = f"models:/{record['registered_model']}/{record['version']}"
    lines = open(mlflow.pyfunc.get_model_dependencies(model)).read().splitlines()
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    (torch,) = [Requirement(line) for line in lines[1:] if line.startswith("torch")]
    (pin,) = torch.specifier
    assert pin.operator == "==" and "+" not in pin.version
    assert torch.specifier.contains(f"{pin.version}+cpu")
    assert registry.requirements()[0] == lines[0]

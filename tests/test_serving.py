"""The champion over HTTP: MLflow's scoring server on a localhost port, bad requests answered
4xx with the problem named while the server keeps serving, notebook 08 in the job, and the
Databricks side (the SDK's serving endpoints) against a stand-in workspace client."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
from unittest.mock import create_autospec
from urllib.parse import urlsplit

import mlflow
import pandas as pd
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, PermissionDenied
from databricks.sdk.service.serving import (
    EndpointCoreConfigOutput,
    EndpointState,
    EndpointStateConfigUpdate,
    EndpointStateReady,
    QueryEndpointResponse,
    ServedEntityOutput,
    ServingEndpointDetailed,
)
from penguin_classifier import serving, tracking
from penguin_classifier.features import MEASUREMENTS
from penguin_classifier.runtime import project_root

from penguins.cli import main

GOOD = serving.EXAMPLE  # Biscoe, 48.7, 14.1, 210, 4450: a Gentoo
NO_MASS = {k: v for k, v in GOOD.items() if k != "BodyMass"}
PREDICT = ["--island", "Biscoe", "--culmen-length", "48.7", "--culmen-depth", "14.1"]
PREDICT += ["--flipper-length", "210", "--body-mass", "4450"]


@pytest.fixture(scope="module")
def model(lab_run):
    """The champion the session's job registered (04 logged it, 05 made it champion)."""
    tracking.reopen(lab_run[0], "trained")  # 04's store
    record = json.loads((lab_run[0].folder("evaluation") / tracking.MLFLOW_JSON).read_text())
    return mlflow.pyfunc.load_model(f"models:/{record['registered_model']}/{record['version']}")


@pytest.fixture(scope="module")
def url(model):
    with serving.LocalServer(model, max_body_bytes=1_000_000) as server:
        yield f"{server.url}/invocations"


def test_the_three_request_formats_get_the_models_answer(model, url):
    # The model itself takes floats; over HTTP, MLflow casts JSON's 210 to the signature's double.
    frame = pd.DataFrame([GOOD]).astype({c: "float64" for c in MEASUREMENTS})
    expected = model.predict(frame).iloc[0].to_dict()
    assert expected["species"] == "Gentoo"
    bodies = [
        {"dataframe_records": [GOOD]},
        {"dataframe_split": {"columns": list(GOOD), "data": [list(GOOD.values())]}},
        {"inputs": [GOOD]},
    ]
    for body in bodies:
        status, answer = serving.post(url, body)
        assert status == 200, answer
        assert answer["predictions"] == [pytest.approx(expected)]


BAD = [
    ("malformed JSON", '{"dataframe_records": [', 400, "valid JSON"),
    ("a missing column", {"dataframe_records": [NO_MASS]}, 400, "BodyMass"),
    (
        "an unknown island",
        {"dataframe_records": [GOOD, {**GOOD, "Island": "Atlantis"}]},
        400,
        "record 2, island 'Atlantis' is not in the saved vocabulary",
    ),
    # MLflow's parser would cast true to 1.0 (a 1 g penguin) before the model sees it.
    (
        "a measurement sent as true",
        {"dataframe_records": [GOOD, {**GOOD, "BodyMass": True}]},
        400,
        "record 2, BodyMass: true is not a positive number up to 3.4e38 (float32)",
    ),
    (
        "a measurement sent as false, split",
        {
            "dataframe_split": {
                "columns": list(GOOD),
                "data": [[*list(GOOD.values())[:3], False, 1]],
            }
        },
        400,
        "record 1, FlipperLength: false is not a positive number",
    ),
    # Python's JSON parser raises RecursionError: MLflow answered 500.
    ("deeply nested JSON", "[" * 100_000, 400, "request body nests JSON deeper than the server"),
    (
        "NaN",
        '{"dataframe_records": [{"Island": "Dream", "CulmenLength": NaN, "CulmenDepth": 15.3,'
        ' "FlipperLength": 200, "BodyMass": 5000}]}',
        400,
        "CulmenLength: nan is not a positive number",
    ),
    ("a negative value", {"dataframe_records": [{**GOOD, "BodyMass": -1}]}, 400, "BodyMass: -1"),
    ("a huge value", {"dataframe_records": [{**GOOD, "BodyMass": 1e300}]}, 400, "BodyMass: 1e+300"),
    ("a word", {"dataframe_records": [{**GOOD, "BodyMass": "heavy"}]}, 400, "BodyMass"),
    ("an empty list", {"dataframe_records": []}, 400, "Island"),
    ("no known key", {"rows": [GOOD]}, 400, "dataframe_records"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_is_refused_with_the_problem_and_the_server_goes_on(
    url, case, body, status, message
):
    got, answer = serving.post(url, body)
    assert got == status, answer
    assert message in serving.problem(answer) or message in answer["message"], answer
    assert serving.post(url, {"dataframe_records": [GOOD]})[1]["predictions"][0]["species"] == (
        "Gentoo"
    )


def test_a_wrong_or_missing_content_type_and_a_body_over_the_limit_are_refused(url):
    status, answer = serving.post(url, json.dumps({"dataframe_records": [GOOD]}), "text/plain")
    assert status == 415 and "content types" in answer
    # None at all: MLflow answered 500 ('NoneType' object has no attribute 'split').
    status, answer = serving.post(url, json.dumps({"dataframe_records": [GOOD]}), None)
    assert status == 415
    assert answer["message"].startswith("request has no Content-Type header: expected one of")
    big = json.dumps({"dataframe_records": [GOOD] * 12_000})  # ~1.2 MB over this server's 1 MB
    status, answer = serving.post(url, big)
    assert status == 413
    assert answer["message"] == f"request body of {len(big):,} bytes is over the 1,000,000 limit"
    assert serving.post(url, {"dataframe_records": [GOOD]})[0] == 200


def post_chunked(url: str, chunks) -> tuple[int, dict, int]:
    """``(status, answer, bytes sent)`` of ``POST url`` with ``chunks`` as a chunked body (no
    Content-Length), from a client that stops sending once the server answers or closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as s:
        s.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent = 0
        try:
            for chunk in chunks:
                if select.select([s], [], [], 0)[0]:
                    break  # answered already
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            else:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after answering
        response = http.client.HTTPResponse(s)
        response.begin()
        return response.status, json.loads(response.read()), sent


def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit(url):
    # Under the limit, a chunked body is a request like any other.
    body = json.dumps({"dataframe_records": [GOOD] * 100}).encode()
    status, answer, _ = post_chunked(url, [body[i : i + 1000] for i in range(0, len(body), 1000)])
    assert status == 200 and len(answer["predictions"]) == 100
    # 32 MiB in 64 KiB chunks (7eca39d read them all, and 150 MiB took 2 GB): 413 once past this
    # server's 1,000,000 bytes, the rest unread; what was sent is what the two sockets' buffers
    # took (~6 MB on Linux's loopback) before the server closed.
    status, answer, sent = post_chunked(url, [b" " * 65536] * 512)
    assert status == 413, answer
    assert answer["message"] == "request body sent in chunks is over the 1,000,000 limit"
    assert sent < 16 * 2**20
    assert serving.post(url, {"dataframe_records": [GOOD]})[0] == 200


@pytest.mark.parametrize(
    "head",
    ['Content-Length: 100\r\n\r\n{"data', 'Transfer-Encoding: chunked\r\n\r\n6\r\n{"data'],
    ids=["content-length", "chunked"],
)
def test_a_half_sent_body_is_answered_408_and_its_connection_closed(model, head):
    # 7eca39d waited for the rest: MLflow's 60 s request timeout answered 504, and kept the
    # connection open.
    with serving.LocalServer(model, body_seconds=1) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            start = time.monotonic()
            request = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            s.sendall(f"{request}{head}".encode())
            response = http.client.HTTPResponse(s)
            response.begin()
            assert response.status == 408
            assert json.loads(response.read())["message"] == "request body not sent in time (1 s)"
            assert s.recv(1) == b""  # the server closed the connection
            assert time.monotonic() - start < 10
        assert serving.post(f"{server.url}/invocations", {"inputs": [GOOD]})[0] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "70000"], "penguins serve: --port 70000: not a TCP port (1 to 65535)"),
        (
            ["bench", "serving", "--seconds", "0.000001"],
            "penguins bench serving: --seconds 1e-06: under 0.1 s, too short to time a request",
        ),
    ],
    ids=["serve --port 70000", "bench serving --seconds 0.000001"],
)
def test_a_serving_parameter_out_of_range_is_one_line(tmp_path, capsys, args, message):
    # Both are refused before the lab folder is looked at (7eca39d: tracebacks).
    assert main([*args, "--lab-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"{message}\n"


def test_the_serve_notebook_served_the_champion_in_the_job(lab_run):
    lab, results = lab_run
    record = json.loads((lab.folder("evaluation") / tracking.MLFLOW_JSON).read_text())
    served = next(r for r in results if r.key == "serve")
    assert served.task_values == {"served_version": record["version"]}
    assert [title for title, _ in served.cells][-3:] == [
        "Serve it",
        "Ask it about the lab's new penguin and the lab's example",
        "Stop the local server",
    ]


def test_a_version_below_the_bar_leaves_the_endpoint_alone(tmp_lab, capsys):
    lab_dir = ["--lab-dir", str(tmp_lab.root)]
    assert main(["run", "--only", "evaluate", *lab_dir, "--param", "min_accuracy=0.999"]) == 0
    capsys.readouterr()
    assert main(["run", "--only", "serve", *lab_dir]) == 0
    out = capsys.readouterr().out
    assert "is not champion: endpoint predict-penguin left as it was" in out
    assert "serving " not in out


def test_penguins_serve_answers_over_http(lab, tmp_path):
    port = serving.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "penguins.cli", "serve", "--port", str(port), "--lab-dir",
         str(lab.root)],
        cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=os.environ,
    )  # fmt: skip
    try:
        first = process.stdout.readline()
        assert first.startswith(
            f"serving models:/penguin_classifier@champion at http://127.0.0.1:{port}"
        )
        status, answer = serving.post(f"http://127.0.0.1:{port}/invocations", {"inputs": [GOOD]})
        assert status == 200 and answer["predictions"][0]["species"] == "Gentoo"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_bench_serving_reports_requests_per_second_and_no_errors(lab, capsys):
    args = ["bench", "serving", "--lab-dir", str(lab.root), "--json"]
    assert main([*args, "--clients", "2", "--seconds", "2", "--max-requests", "30"]) == 0
    result = json.loads(capsys.readouterr().out)
    for rows in (1, 1000):
        run = result[f"rows_{rows}"]
        assert run["errors"] == 0 and 0 < run["requests"] <= 30
        assert run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]


# --- Databricks: the SDK's serving endpoints, on a stand-in client ------------------------------


def endpoint(version: str, ready: str = "READY") -> ServingEndpointDetailed:
    entity = ServedEntityOutput(
        entity_name="main.default.penguin_classifier", entity_version=version
    )
    return ServingEndpointDetailed(
        name="predict-penguin",
        config=EndpointCoreConfigOutput(served_entities=[entity]),
        state=EndpointState(
            ready=EndpointStateReady(ready), config_update=EndpointStateConfigUpdate.NOT_UPDATING
        ),
    )


def workspace(found: ServingEndpointDetailed | None = None):
    w = create_autospec(WorkspaceClient, instance=True)
    w.config.host = "https://adb-1.azuredatabricks.net"
    w.serving_endpoints.get.side_effect = None if found else NotFound("no such endpoint")
    w.serving_endpoints.get.return_value = found
    return w


def test_deploy_creates_the_endpoint_or_points_it_at_the_new_version():
    w = workspace()
    said = serving.deploy(w, "predict-penguin", "main.default.penguin_classifier", "3", True)
    assert (
        said == "created endpoint predict-penguin serving main.default.penguin_classifier version 3"
    )
    config = w.serving_endpoints.create_and_wait.call_args.kwargs["config"]
    (entity,) = config.served_entities
    assert (entity.entity_version, entity.workload_size, entity.scale_to_zero_enabled) == (
        "3", "Small", True
    )  # fmt: skip
    w = workspace(endpoint("2"))
    said = serving.deploy(w, "predict-penguin", "main.default.penguin_classifier", "3", False)
    assert said.endswith("now serves main.default.penguin_classifier version 3")
    (entity,) = w.serving_endpoints.update_config_and_wait.call_args.kwargs["served_entities"]
    assert (entity.entity_version, entity.scale_to_zero_enabled) == ("3", False)
    w.serving_endpoints.create_and_wait.assert_not_called()


def test_predict_endpoint_answers_as_the_lab_folder(lab, capsys, monkeypatch):
    w = workspace(endpoint("1"))
    answer = {"species": "Gentoo", "probability_Adelie": 0.0, "probability_Gentoo": 0.99,
              "probability_Chinstrap": 0.01}  # fmt: skip
    w.serving_endpoints.query.return_value = QueryEndpointResponse(predictions=[answer])
    monkeypatch.setattr("penguins.serve.connect", lambda profile: w)
    assert main(["predict", "--endpoint", "predict-penguin", *PREDICT, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "species": "Gentoo",
        "probabilities": {"Adelie": 0.0, "Gentoo": 0.99, "Chinstrap": 0.01},
    }
    (record,) = w.serving_endpoints.query.call_args.kwargs["dataframe_records"]
    assert record == {**GOOD, "FlipperLength": 210.0, "BodyMass": 4450.0}


@pytest.mark.parametrize(
    ("found", "error", "message"),
    [
        (None, None, "endpoint predict-penguin not found in https://adb-1.azuredatabricks.net"),
        (endpoint("1", "NOT_READY"), None,
         "endpoint predict-penguin is not ready (NOT_READY, config update NOT_UPDATING)"),
        (endpoint("1"), PermissionDenied("no CAN_QUERY"),
         "not allowed to query predict-penguin: no CAN_QUERY"),
    ],
)  # fmt: skip
def test_predict_endpoint_errors_are_one_line(capsys, monkeypatch, found, error, message):
    w = workspace(found)
    w.serving_endpoints.query.side_effect = error
    monkeypatch.setattr("penguins.serve.connect", lambda profile: w)
    assert main(["predict", "--endpoint", "predict-penguin", *PREDICT]) == 2
    assert capsys.readouterr().err == f"penguins predict: {message}\n"

"""``penguins serve``, ``penguins predict --endpoint`` and ``penguins bench serving``: the
champion over HTTP, here (MLflow's scoring server) or on Databricks (a serving endpoint)."""

from __future__ import annotations

import errno
import http.client
import json
import logging
import socket
import statistics
import threading
import time
from urllib.parse import urlsplit

from penguin_classifier.errors import PenguinInputError

from .submit import connect, one_line

# bench serving: a request takes milliseconds; a shorter load times nothing.
MIN_SECONDS = 0.1


def served_model(lab_dir: str, model_uri: str):
    """The pyfunc model to serve, from the MLflow store beside ``lab_dir`` (or MLflow's
    variables)."""
    from penguin_classifier import registry, tracking
    from penguin_classifier.lab import Lab

    tracking.configure(Lab(lab_dir), experiment=None)
    return registry.load_pyfunc(model_uri)[0]


def check_port(port: int) -> None:
    """One line if ``port`` of 127.0.0.1 cannot be served on: out of range, taken, refused."""
    if not 1 <= port <= 65535:
        raise PenguinInputError(f"--port {port}: not a TCP port (1 to 65535)")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PenguinInputError(f"--port {port}: in use by another program") from None
            raise PenguinInputError(f"--port {port}: {error.strerror}") from None


def serve(args) -> int:
    """Serve the model on 127.0.0.1 until Ctrl-C."""
    from penguin_classifier.serving import EXAMPLE, LocalServer

    check_port(args.port)
    model = served_model(args.lab_dir, args.model_uri)
    with LocalServer(model, args.port) as server:
        body = json.dumps({"dataframe_records": [EXAMPLE]})
        print(f"serving {args.model_uri} at {server.url}/invocations (Ctrl-C stops)", flush=True)
        print(f"try: curl -s {server.url}/invocations -H 'Content-Type: application/json' "
              f"-d '{body}'", flush=True)  # fmt: skip
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped")
    return 0


def predict_endpoint(name: str, profile: str | None, penguin) -> tuple[str, dict[str, float]]:
    """``penguins predict --endpoint``: signs in with ``profile`` and asks the Databricks serving
    endpoint ``name`` about one penguin (:func:`serving.ask_endpoint`); its species and
    probabilities. Every failure is one line (exit 2): a bad name, not signed in, unreachable,
    rate-limited, or an answer that is not the API's JSON or not a prediction."""
    try:
        import requests
        from databricks.sdk import errors
    except ImportError:
        raise PenguinInputError("needs databricks-sdk: pip install databricks-sdk") from None
    from penguin_classifier.serving import ask_endpoint, endpoint_name

    endpoint_name(name, "--endpoint")
    # The SDK logs warnings (an unreachable host, a page that is not JSON, ...) that would break
    # the one-line errors; its parser's logging.debug(...) can give the root logger a handler.
    sdk_log = logging.getLogger("databricks.sdk")
    sdk_log.addHandler(logging.NullHandler())
    sdk_log.propagate = False
    start = time.monotonic()
    try:
        w = connect(profile)
    except ValueError as e:  # no host, no credentials, an unknown profile
        raise PenguinInputError(f"not signed in: {one_line(e)}") from None
    host = w.config.host
    # The last HTTP answer the SDK got: for one that is not the API's JSON, its error's wording
    # differs by version (databricks-sdk 0.20 and 0.30: no status; 0.167: a debug dump).
    answers = []
    sdk_session(w).hooks["response"].append(lambda response, **_: answers.append(response))
    try:
        answer = ask_endpoint(w, name, [penguin.frame().iloc[0].to_dict()])[0]
    except errors.Unauthenticated as e:
        raise PenguinInputError(f"not signed in to {host}: {one_line(e)}") from None
    except errors.PermissionDenied as e:
        raise PenguinInputError(f"not allowed to query {name}: {one_line(e)}") from None
    except requests.JSONDecodeError:  # a 200 whose body is not JSON
        raise PenguinInputError(f"{host} answered HTTP 200 with a body that is not JSON") from None
    except (errors.TooManyRequests, TimeoutError, requests.RequestException) as e:
        # The SDK retries 429s and lost connections for retry_timeout_seconds (connect: 30), then
        # raises a TimeoutError from the last error. It may have retried twice by then: newer
        # SDKs probe the host (/.well-known/databricks-config) as connect signs in.
        cause = e.__cause__ if isinstance(e, TimeoutError) and e.__cause__ else e
        if isinstance(cause, errors.TooManyRequests):
            why = f"{host} is limiting requests (429 Too Many Requests): {one_line(cause)}"
            raise PenguinInputError(f"{why}; try again in a minute") from None
        gave_up = f"gave up after {time.monotonic() - start:.0f} s"
        raise PenguinInputError(f"cannot reach {host} ({gave_up}): {one_line(cause)}") from None
    except errors.DatabricksError as e:
        # An error whose body is not JSON (a proxy's page, HTML): the status line is enough.
        last = answers[-1] if answers else None
        if last is not None and not last.ok and not is_json(last):
            code = f"HTTP {last.status_code} {last.reason}".strip()
            raise PenguinInputError(f"{host} answered {code}, a body that is not JSON") from None
        raise PenguinInputError(f"endpoint {name} answered: {one_line(e)}") from None
    probabilities = {
        k.removeprefix("probability_"): float(v)
        for k, v in answer.items()
        if k.startswith("probability_")
    }
    return answer["species"], probabilities


def sdk_session(w):
    """The ``requests.Session`` a ``WorkspaceClient`` sends with: ``api_client._session`` in
    databricks-sdk 0.20 and 0.30, ``api_client._api_client._session`` in newer ones."""
    return getattr(w.api_client, "_api_client", w.api_client)._session


def is_json(response) -> bool:
    try:
        response.json()
    except ValueError:  # requests' JSONDecodeError is one
        return False
    return True


def load_run(url: str, body: bytes, clients: int, seconds: float, max_requests: int) -> dict:
    """``clients`` threads, each with its own keep-alive connection, POST ``body`` until
    ``seconds`` pass or ``max_requests`` are sent in all; requests/s, latency percentiles and
    errors (any answer but 200)."""
    parts = urlsplit(url)
    latencies, errors, sent, lock = [], [0], [0], threading.Lock()
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}

    def client():
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while time.perf_counter() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    break
                sent[0] += 1
            start = time.perf_counter()
            try:
                connection.request("POST", parts.path, body, headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[0] += 1
        connection.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    # No answer at all (every request refused): no latencies, None.
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "requests_per_s": round(len(latencies) / wall, 1),
        **{f"p{p}_ms": round(1000 * cuts[p - 1], 2) if cuts else None for p in (50, 95, 99)},
    }


def bench_serving(lab_dir, model_uri, clients: int, seconds: float, max_requests: int) -> dict:
    """The local server under load: single-row requests, then 1,000-row requests."""
    from penguin_classifier.serving import EXAMPLE, LocalServer

    if seconds < MIN_SECONDS:
        raise PenguinInputError(
            f"--seconds {seconds:g}: under {MIN_SECONDS:g} s, too short to time a request"
        )
    model = served_model(lab_dir, model_uri)
    result = {"clients": clients, "seconds": seconds}
    with LocalServer(model) as server:
        for rows in (1, 1000):
            body = json.dumps({"dataframe_records": [EXAMPLE] * rows}).encode()
            run = load_run(f"{server.url}/invocations", body, clients, seconds, max_requests)
            result[f"rows_{rows}"] = run
    return result


def format_serving(result: dict) -> str:
    lines = [f"local scoring server, {result['clients']} concurrent clients, "
             f"up to {result['seconds']:g} s each:"]  # fmt: skip
    for rows in (1, 1000):
        r = result[f"rows_{rows}"]
        ms = {p: "-" if r[p] is None else f"{r[p]:.1f}" for p in ("p50_ms", "p95_ms", "p99_ms")}
        lines.append(
            f"  {rows:>5}-row requests: {r['requests_per_s']:>8,.1f} req/s "
            f"({r['requests_per_s'] * rows:>10,.0f} rows/s), p50 {ms['p50_ms']} ms, "
            f"p95 {ms['p95_ms']} ms, p99 {ms['p99_ms']} ms; "
            f"{r['requests']} answered, {r['errors']} errors"
        )
    return "\n".join(lines)

"""The champion behind HTTP: a Databricks serving endpoint, or MLflow's own scoring server here.

Both speak the same API: ``POST /invocations`` (locally) or
``/serving-endpoints/<name>/invocations`` (Databricks) with ``{"dataframe_records": [...]}``,
``{"dataframe_split": {...}}`` or ``{"inputs": [...]}`` of the lab's raw columns; the answer is
``{"predictions": [{"species": ..., "probability_<species>": ...}, ...]}``.

* :func:`deploy` creates the endpoint, or points it at a new version, with the SDK's waiters
  (CPU, size Small; scale to zero when asked), and :func:`ask_endpoint` asks it.
* :class:`LocalServer` runs MLflow's scoring server (``mlflow.pyfunc.scoring_server``, the one
  ``mlflow models serve`` runs) in this process on a localhost port, behind
  :mod:`request_guard`: a body over :data:`MAX_BODY_BYTES` (413) or not sent within
  :data:`BODY_SECONDS` (408) is left unread, and no request gets a 500.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

from .errors import PenguinInputError, PenguinRunError

# Databricks serving takes up to 16 MB a request; a thousand penguins are ~100 kB.
MAX_BODY_BYTES = 4 * 1024 * 1024
# A client that stops sending half-way would hold a connection (and, with werkzeug, a thread).
BODY_SECONDS = 30
WORKLOAD_SIZE = "Small"
# The lab's example request, a Gentoo.
EXAMPLE = {
    "Island": "Biscoe",
    "CulmenLength": 48.7,
    "CulmenDepth": 14.1,
    "FlipperLength": 210,
    "BodyMass": 4450,
}


def endpoint_name(name: str, where: str) -> str:
    """``name`` if it is a serving endpoint's name (letters, digits, ``-`` and ``_``, at most 63);
    else one line naming ``where`` it came from. The name goes into API paths
    (``/serving-endpoints/<name>``): ``../`` would reach other APIs with the caller's token."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", name):
        raise PenguinInputError(
            f"{where}: {name!r} is not an endpoint name (letters, digits, - and _, at most 63)"
        )
    return name


def served_entity(model_name: str, version: str, scale_to_zero: bool):
    from databricks.sdk.service.serving import ServedEntityInput

    return ServedEntityInput(
        entity_name=model_name,
        entity_version=str(version),
        workload_size=WORKLOAD_SIZE,
        scale_to_zero_enabled=scale_to_zero,
    )


def deploy(w, endpoint: str, model_name: str, version: str, scale_to_zero: bool, minutes=30):
    """Serve ``model_name`` version ``version`` at ``endpoint`` (created if missing); wait until
    it is ready. ``w``: a ``databricks.sdk.WorkspaceClient``. Returns what it did, in words; one
    line if the endpoint is busy building another version, failed to build, or is still building
    after ``minutes``."""
    from databricks.sdk.errors import NotFound, OperationFailed
    from databricks.sdk.service.serving import EndpointCoreConfigInput, EndpointStateConfigUpdate

    entity = served_entity(model_name, version, scale_to_zero)
    wanted = [(model_name, str(version))]
    timeout = timedelta(minutes=minutes)
    check = f"`databricks serving-endpoints get {endpoint}` shows its state"
    try:
        try:
            current = w.serving_endpoints.get(endpoint)
        except NotFound:
            config = EndpointCoreConfigInput(name=endpoint, served_entities=[entity])
            w.serving_endpoints.create_and_wait(endpoint, config=config, timeout=timeout)
            return f"created endpoint {endpoint} serving {model_name} version {version}"
        # config: what it serves, None until a first build succeeded; pending_config: what it is
        # building (or failed to build). A failed build is replaced by this version's config.
        update = current.state.config_update if current.state else None
        if update == EndpointStateConfigUpdate.IN_PROGRESS:
            if serves(current.pending_config) != wanted:
                raise PenguinRunError(
                    f"endpoint {endpoint} is busy building another model version; run again "
                    f"when it is done: {check}"
                )
            w.serving_endpoints.wait_get_serving_endpoint_not_updating(endpoint, timeout=timeout)
        elif serves(current.config) == wanted:
            return f"endpoint {endpoint} already serves {model_name} version {version}"
        else:
            w.serving_endpoints.update_config_and_wait(
                endpoint, served_entities=[entity], timeout=timeout
            )
        return f"endpoint {endpoint} now serves {model_name} version {version}"
    except OperationFailed as error:  # the waiter saw UPDATE_FAILED or UPDATE_CANCELED
        raise PenguinRunError(
            f"endpoint {endpoint} did not build {model_name} version {version} "
            f"({' '.join(str(error).split())}); {check}"
        ) from None
    except TimeoutError as error:
        if error.__cause__:  # the SDK's retries gave up on the workspace: not the waiter's
            raise
        raise PenguinRunError(
            f"endpoint {endpoint} is still building {model_name} version {version} after "
            f"{minutes:g} min; {check}"
        ) from None


def serves(config) -> list[tuple[str, str]]:
    """The (model, version) pairs of an endpoint's config or pending config (none if None)."""
    entities = (config.served_entities if config else None) or []
    return [(e.entity_name, str(e.entity_version)) for e in entities]


def ask_endpoint(w, endpoint: str, records: list[dict]) -> list[dict]:
    """The endpoint's ``predictions`` for ``records``, a species and its probabilities for each;
    one line if it is missing or not ready, or answers anything else."""
    from databricks.sdk import errors

    try:
        state = w.serving_endpoints.get(endpoint).state
        if state and state.ready and state.ready.value != "READY":
            update = state.config_update.value if state.config_update else "unknown"
            raise PenguinInputError(
                f"endpoint {endpoint} is not ready ({state.ready.value}, config update {update})"
            )
        predictions = w.serving_endpoints.query(endpoint, dataframe_records=records).predictions
    except errors.NotFound:
        raise PenguinInputError(f"endpoint {endpoint} not found in {w.config.host}") from None
    # An answer from outside: one {"species": str, "probability_<species>": number} a record.
    numbers = (int, float)
    if not (
        isinstance(predictions, list)
        and len(predictions) == len(records)
        and all(isinstance(p, dict) and isinstance(p.get("species"), str) for p in predictions)
        and all(
            isinstance(v, numbers) and not isinstance(v, bool)
            for p in predictions
            for k, v in p.items()
            if k.startswith("probability_")
        )
    ):
        answer = "nothing" if predictions is None else " ".join(str(predictions).split())
        answer = answer if len(answer) <= 80 else f"{answer[:77]}..."
        raise PenguinInputError(
            f"endpoint {endpoint} answered {answer}, not a species and its probabilities for "
            f"each record sent ({len(records)})"
        )
    return predictions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scoring_app(model, max_body_bytes=MAX_BODY_BYTES, body_seconds: float = BODY_SECONDS):
    """MLflow's scoring server for a loaded pyfunc ``model``, behind :mod:`request_guard`: an
    ASGI app (MLflow 3's FastAPI app), or a Flask app (MLflow 2, as on Databricks Runtime 15.4 LTS
    ML), whose server must time out reads after ``body_seconds``, as :class:`LocalServer`'s does."""
    from mlflow.pyfunc import scoring_server

    from .request_guard import BodyGuard, guard_flask

    app = scoring_server.init(model)
    if hasattr(app, "wsgi_app"):  # Flask
        return guard_flask(app, max_body_bytes, body_seconds)
    return BodyGuard(app, max_body_bytes, body_seconds)


class LocalServer:
    """``with LocalServer(model) as server:`` MLflow's scoring server at ``server.url``.

    Runs uvicorn (werkzeug for MLflow 2's Flask app) in a thread of this process, on ``port``
    (default: a free one) of 127.0.0.1 only, and stops it when the block ends. A body over
    ``max_body_bytes`` or not sent within ``body_seconds`` is refused (:func:`scoring_app`).
    """

    def __init__(self, model, port=None, max_body_bytes=MAX_BODY_BYTES, body_seconds=BODY_SECONDS):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = scoring_app(model, max_body_bytes, body_seconds)
        if hasattr(app, "wsgi_app"):  # MLflow 2's Flask app: werkzeug's server
            from werkzeug.serving import WSGIRequestHandler, make_server

            # A read that waits longer (headers, body, an idle keep-alive) raises TimeoutError.
            timed = type("TimedRequestHandler", (WSGIRequestHandler,), {"timeout": body_seconds})
            self._wsgi = make_server(
                "127.0.0.1", self.port, app, threaded=True, request_handler=timed
            )
            run = self._wsgi.serve_forever
        else:
            import uvicorn

            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
            self._server = uvicorn.Server(config)
            self._wsgi, run = None, self._server.run
        self._thread = threading.Thread(target=run, name="penguins-serve", daemon=True)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> LocalServer:
        """Start serving; return once the server answers."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self._wsgi or self._server.started):  # werkzeug listens from make_server
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise PenguinRunError(f"the scoring server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._wsgi:
            self._wsgi.shutdown()
        else:
            self._server.should_exit = True
        self._thread.join(timeout=10)


def post(url: str, body: bytes | str | dict, content_type: str | None = "application/json"):
    """``(status, answer)`` of ``POST url``: the answer's JSON, or its text if it is not JSON;
    ``content_type`` None sends none.

    A server may answer (413) and close before the whole body is sent: the answer still counts.
    """
    data = json.dumps(body) if isinstance(body, dict) else body
    data = data.encode() if isinstance(data, str) else data
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            connection.request("POST", parts.path, data, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered before reading it all
        response = connection.getresponse()
        status, text = response.status, response.read()
    finally:
        connection.close()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def ask_local(url: str, records: list[dict]) -> list[dict]:
    """The local server's ``predictions`` for ``records``; its message as one line if refused."""
    status, answer = post(f"{url}/invocations", {"dataframe_records": records})
    if status != 200:
        raise PenguinInputError(f"the server answered {status}: {problem(answer)}")
    return answer["predictions"]


def problem(answer) -> str:
    """The one line of a refusal that names the problem: MLflow puts the data first and the
    model's own error last (``Failed to predict data '...'. Error: record 2, BodyMass: ...``)."""
    message = str(answer.get("message", answer) if isinstance(answer, dict) else answer)
    return message.rsplit("Error: ", 1)[-1].strip().splitlines()[0] if message else ""

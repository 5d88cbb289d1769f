"""What MLflow's scoring server lacks for requests from outside, in front of it.

Every refusal is MLflow's own JSON error (``{"error_code": ..., "message": ...}``), a 4xx:

* 413, a body over the limit, by its Content-Length or as it streams (``Transfer-Encoding:
  chunked`` has none): the bytes are counted as they arrive and the rest is never read;
* 408, a body not sent in time: a client that stops half-way would hold a connection;
* 415, no Content-Type (MLflow answers 500);
* 400, a measurement sent as JSON ``true`` or ``false`` (MLflow's parser casts it to 1.0 or 0.0
  before the model sees it), JSON nested too deep for Python's parser (MLflow answers 500), a
  body that is not UTF-8 (MLflow 2 answers 500).

:class:`BodyGuard` is the ASGI middleware for MLflow 3's FastAPI app; :func:`guard_flask` adds
the same checks to MLflow 2's Flask app: :class:`WsgiBodyGuard` in front of it, and hooks
(werkzeug's socket timeout bounds each read there: :class:`serving.LocalServer` sets it).
"""

from __future__ import annotations

import asyncio
import io
import json
import time

from .features import MEASUREMENT, MEASUREMENTS

NESTED = "request body nests JSON deeper than the server parses"
NOT_UTF8 = "request body is not UTF-8"
# The body is read before anything else: these refusals leave part of it unread.
CLOSE = {"Connection": "close"}


def error(message: str) -> dict:
    return {"error_code": "BAD_REQUEST", "message": message}


def too_large(length: int | None, limit: int) -> str:
    """The 413's message; ``length``: the Content-Length (None: the body came in chunks)."""
    sent = "sent in chunks" if length is None else f"of {length:,} bytes"
    return f"request body {sent} is over the {limit:,} limit"


def too_slow(seconds: float) -> str:
    return f"request body not sent in time ({seconds:g} s)"


def request_problem(content_type: str | None, body: bytes) -> tuple[int, str] | None:
    """``(status, message)`` for a whole request body MLflow would mishandle, else None."""
    from mlflow.pyfunc.scoring_server import CONTENT_TYPES

    if not content_type:
        expected = ", ".join(CONTENT_TYPES)
        return 415, f"request has no Content-Type header: expected one of {expected}"
    json_body = content_type.split(";")[0].strip().lower() == "application/json"
    if json_body and (b"true" in body or b"false" in body):  # a quick look first
        boolean = boolean_measurement(body)
        if boolean:
            return 400, boolean
    return None


def boolean_measurement(body: bytes) -> str | None:
    """``record 2, BodyMass: true is not ...`` for the first measurement a JSON request gives as
    ``true`` or ``false``, records counted from 1; None if there is none, or if the body is not
    JSON that MLflow reads (its parser says what is wrong then)."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict):
        return None
    for number, column, value in cells(request):
        if column in MEASUREMENTS and isinstance(value, bool):
            return f"record {number}, {column}: {json.dumps(value)} is not {MEASUREMENT}"
    return None


def cells(request: dict):
    """``(record number, column, value)`` of the records of a request in MLflow's formats:
    ``dataframe_split`` (columns and rows), ``dataframe_records``, ``inputs`` or ``instances`` (a
    list of records, or columns of values); a part of another shape is skipped."""
    split = request.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        columns = split.get("columns") or []
        for number, row in enumerate(split["data"], 1):
            if isinstance(row, list):
                yield from ((number, c, v) for c, v in zip(columns, row, strict=False))
    for key in ("dataframe_records", "inputs", "instances"):
        data = request.get(key)
        if isinstance(data, list):
            for number, record in enumerate(data, 1):
                if isinstance(record, dict):
                    yield from ((number, c, v) for c, v in record.items())
        elif isinstance(data, dict):
            for column, values in data.items():
                values = values if isinstance(values, list) else [values]
                yield from ((number, column, v) for number, v in enumerate(values, 1))


class BodyGuard:
    """ASGI middleware in front of MLflow 3's FastAPI ``app``: reads each POST's body itself,
    counting the bytes as they arrive, at most ``max_body_bytes`` within ``body_seconds``;
    refuses what :func:`request_problem` finds; then hands the app the body."""

    def __init__(self, app, max_body_bytes: int, body_seconds: float):
        app.add_exception_handler(RecursionError, lambda *_: refusal(400, NESTED))
        self.app, self.max_body_bytes, self.body_seconds = app, max_body_bytes, body_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        got = await self.read(receive, headers.get("content-length", ""))
        if isinstance(got, bytes):
            problem = request_problem(headers.get("content-type"), got)
            if not problem:
                return await self.app(scope, replay(got, receive), send)
            got = refusal(*problem)
        if got is not None:  # a refusal; None: the client went away
            await got(scope, receive, send)
        return None

    async def read(self, receive, length: str):
        """The whole body, or the refusal to answer instead (None if the client went away)."""
        limit = self.max_body_bytes
        if length.isdigit() and int(length) > limit:
            return refusal(413, too_large(int(length), limit))
        chunks, size, more = [], 0, True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_seconds
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return refusal(408, too_slow(self.body_seconds))
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:  # chunked: a Content-Length body is held to its length by uvicorn
                return refusal(413, too_large(None, limit))
            more = message.get("more_body", False)
        return b"".join(chunks)


def replay(body: bytes, receive):
    """An ASGI ``receive`` that gives ``body`` first, then what ``receive`` gives (a disconnect)."""
    given = False

    async def receive_again():
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


def refusal(status: int, message: str):
    """MLflow's JSON error as a Starlette response; the connection closes after a 408 or 413,
    whose body is left unread."""
    from fastapi.responses import JSONResponse

    return JSONResponse(error(message), status, CLOSE if status in (408, 413) else None)


def guard_flask(app, max_body_bytes: int, body_seconds: float):
    """MLflow 2's Flask ``app`` with the same checks: :class:`WsgiBodyGuard` reads the body in
    front of Flask, error handlers and a hook before MLflow's view do the rest."""
    import flask

    def refuse(status: int, message: str):
        return flask.jsonify(error(message)), status

    app.wsgi_app = WsgiBodyGuard(app.wsgi_app, max_body_bytes, body_seconds)
    app.register_error_handler(RecursionError, lambda _: refuse(400, NESTED))
    app.register_error_handler(UnicodeDecodeError, lambda _: refuse(400, NOT_UTF8))

    @app.before_request
    def check():
        if flask.request.method == "POST":
            problem = request_problem(flask.request.content_type, flask.request.get_data())
            if problem:
                return refuse(*problem)
        return None

    return app


class WsgiBodyGuard:
    """WSGI middleware in front of MLflow 2's Flask ``app``: reads each POST's body itself,
    counting the bytes as they arrive, at most ``max_body_bytes`` within ``body_seconds``, then
    hands the app the body, whatever werkzeug's version (2.2 reads a chunked body past Flask's
    ``MAX_CONTENT_LENGTH``). Its server must time out a socket read after ``body_seconds``, as
    :class:`serving.LocalServer`'s does: werkzeug raises that TimeoutError, or ClientDisconnected
    from it."""

    def __init__(self, app, max_body_bytes: int, body_seconds: float):
        self.app, self.max_body_bytes, self.body_seconds = app, max_body_bytes, body_seconds

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            got = self.read(environ)
            if not isinstance(got, bytes):
                return got(environ, start_response)
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(got), str(len(got))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
        return self.app(environ, start_response)

    def read(self, environ):
        """The whole body, or the refusal to answer instead."""
        from werkzeug.exceptions import ClientDisconnected
        from werkzeug.wsgi import get_content_length, get_input_stream

        limit, length = self.max_body_bytes, get_content_length(environ)
        if length is not None and length > limit:
            return wsgi_refusal(413, too_large(length, limit))
        stream = get_input_stream(environ)  # held to its Content-Length, or dechunked
        chunks, size = [], 0
        deadline = time.monotonic() + self.body_seconds
        try:
            while chunk := stream.read(min(65536, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    return wsgi_refusal(413, too_large(None, limit))
                if time.monotonic() > deadline:
                    raise TimeoutError
        except (TimeoutError, ClientDisconnected):  # a client gone gets the answer too
            return wsgi_refusal(408, too_slow(self.body_seconds))
        return b"".join(chunks)


def wsgi_refusal(status: int, message: str):
    """MLflow's JSON error as a werkzeug response that closes the connection (the body is left
    unread)."""
    from werkzeug.wrappers import Response

    return Response(json.dumps(error(message)), status, CLOSE, mimetype="application/json")

"""Every HTTP request gets an id, a log line that carries it, and its time in a histogram.

The id is the client's X-Request-ID if it is sane, else a new one. It is in
``request.state.request_id``, in the X-Request-ID response header, in every problem body and in
the request's log line, so one id ties a client's report to the logs.

The log line replaces uvicorn's access log (off, see __main__.py): method, path, status,
duration and id, plus what the handler adds with ``annotate`` (a record's id and digit), so an
upload costs one line, not one from uvicorn and one from the handler. No query string and no
client address: both can carry what is private.

The time goes to ``digits_gateway_request_seconds`` by route, method and status (see
http_metrics.py). One middleware does all three because all three need the same two facts, the
status and the time, and each ASGI layer costs every request a wrapper around ``send``.

Pure ASGI (``@app.middleware("http")``, Starlette's BaseHTTPMiddleware, runs each request in a
task of its own and wraps the response in a stream, which cost about as much as the rest of a
``/healthz`` request), outermost of ours, so that even a 413 from the body-size limit carries the
id, is logged and is timed.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.http_metrics import HTTP_SECONDS

log = logging.getLogger("services.gateway.requests")

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_FIELDS = "log_fields"  # in the request's state: what the handler adds to the line


def annotate(request: Request, **fields: Any) -> None:
    """Add ``fields`` to the request's log line."""
    request.scope["state"].setdefault(_FIELDS, {}).update(fields)


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(HEADER, b"")
        request_id = given.decode() if _SANE.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500  # unless a response starts: an exception escaped to the 500 handler, outside us

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == HEADER for name, _ in headers):
                    headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            # The router records the matched route in the scope it was given.
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_SECONDS.labels(route, scope["method"], str(status)).observe(seconds)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    **state.get(_FIELDS, {}),
                },
            )

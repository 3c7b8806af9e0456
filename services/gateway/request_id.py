"""A request id for every HTTP request, and one structured log line per request that carries it.

The id is the client's X-Request-ID if it is sane, else a new one. It is in
``request.state.request_id``, in the X-Request-ID response header, in every problem body and in
the request's log line, so one id ties a client's report to the logs.

The log line replaces uvicorn's access log (off, see __main__.py): method, path, status,
duration and id, plus what the handler adds with ``annotate`` (a record's id and digit), so an
upload costs one line, not one from uvicorn and one from the handler. No query string and no
client address: both can carry what is private.

Pure ASGI (no per-request task or body buffering), outermost, so that even a 413 from the
body-size limit carries the id and is logged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("services.gateway.requests")

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_FIELDS = "log_fields"  # in the request's state: what the handler adds to the line


def annotate(request: Request, **fields: Any) -> None:
    """Add ``fields`` to the request's log line."""
    request.scope["state"].setdefault(_FIELDS, {}).update(fields)


class RequestId:
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
        status = 0

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
            # status 0: no response was started (the client went away, or a bug: logged apart).
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    **state.get(_FIELDS, {}),
                },
            )

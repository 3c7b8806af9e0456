"""Time every HTTP request, by route, method and status, for Prometheus.

Pure ASGI: ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware) runs each request in a
task of its own and wraps the response in a stream, which cost about as much as the rest of a
``/healthz`` request.
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_SECONDS = Histogram(
    "digits_gateway_request_seconds",
    "HTTP request handling time, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPLOAD_PARSE_SECONDS = Histogram(
    "digits_gateway_upload_parse_seconds",
    "Time to receive and parse an upload's multipart body, up to the image's bytes.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = "500"  # unless a response starts: an exception escaped to the 500 handler

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # The router records the matched route in the scope it was given.
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_SECONDS.labels(route, scope["method"], status).observe(time.perf_counter() - start)

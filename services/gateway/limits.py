"""Hard caps at the HTTP edge: request bodies, enforced while they stream in, and requests
handled at once.

Bodies: checking Content-Length alone is not enough (chunked uploads have none) and checking after
parsing is too late (the body is already on disk or in memory), so this ASGI middleware counts
bytes as they arrive. The moment the cap is passed it answers 413 itself and tells the app the
client went away, so whatever the app does next is dropped rather than turned into a 400 or 500.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import problems

OVERLOADED = Counter("digits_gateway_overloaded_total", "Requests refused with 503 because the gateway was at its limit.")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return

        received = 0
        started = False
        rejected = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not started:
                    rejected = True
                    await self._reject(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        body = problems.encoded(
            "request-too-large",
            f"the request body exceeds {self.max_bytes} bytes",
            scope.get("state", {}).get("request_id", ""),
            scope.get("path", ""),
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", problems.MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class InFlight:
    """How many API requests the gateway is handling now: counted by ConcurrencyLimit, read by
    the coalescers (an upload with no other request in flight can have no company)."""

    def __init__(self) -> None:
        self.count = 0

    def others(self) -> bool:
        return self.count > 1


class ConcurrencyLimit:
    """At most ``max_requests`` API requests handled at once; past that, a 503 with Retry-After.
    A queue past that point only grows until every request in it misses its client's deadline:
    refusing early keeps the ones admitted fast. Health checks are never refused, so a busy
    gateway is not mistaken for a dead one.

    A refusal is held for ``hold_seconds`` before it is sent. A client that honours Retry-After
    never notices; one that retries at once (a tight retry loop, a load generator) would
    otherwise turn refusals into thousands of requests a second, each costing this process
    about as much CPU as a health check, until the admitted requests starve (measured: at 512
    connections answered uploads fell from ~300/s to ~13/s). A held refusal costs no CPU, and
    at most ``4 × max_requests`` are held at once; past that they are sent at once.
    """

    _EXEMPT = ("/healthz", "/readyz")

    def __init__(
        self, app: ASGIApp, max_requests: int, hold_seconds: float = 0.0, in_flight: InFlight | None = None
    ) -> None:
        self.app = app
        self.max_requests = max_requests  # 0: no limit, only the count
        self.hold_seconds = hold_seconds
        self.in_flight = in_flight or InFlight()
        self.held = 0

    @property
    def active(self) -> int:
        return self.in_flight.count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.max_requests and self.in_flight.count >= self.max_requests:
            await self._refuse(scope, send)
            return
        self.in_flight.count += 1  # one event loop: no lock needed between the check and the count
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.count -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        OVERLOADED.inc()
        body = problems.encoded(
            "overloaded",
            f"the gateway is handling {self.active} requests, its limit; retry shortly",
            scope.get("state", {}).get("request_id", ""),
            scope.get("path", ""),
        )
        if self.hold_seconds > 0 and self.held < 4 * self.max_requests:
            self.held += 1
            try:
                await asyncio.sleep(self.hold_seconds)
            finally:
                self.held -= 1
        headers = [(b"content-type", problems.MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                   (b"retry-after", b"1")]  # fmt: skip
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

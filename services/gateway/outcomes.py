"""Counts the uploads answered without a record (refused as not a digit, too large, failed...)
for the dashboard, in the recorder's counters.

Refusals happen here and in the recognizer, and nothing is recorded for them; so this ASGI
middleware reads the problem type of every failed ``POST /v1/recognitions`` (a problem body is
small: at most ``_MAX_BODY`` bytes are looked at) and adds it to a tally in memory
(digits/tally.py). The tally is sent to the recorder (``CountUploadOutcomes``) every
``FLUSH_SECONDS``, as one small call whatever the rate: an upload's answer never waits for it, a
flood of bad uploads costs one call a period, and the keys are the fixed problem types.
Best-effort: a failed report is dropped, not retried (counter increments are not idempotent),
and what a process had not yet sent when it stops is lost.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from prometheus_client import Counter as Metric

from digits.outcomes import UPLOAD_OUTCOMES
from digits.tally import Counts, Tally
from digits.v1 import recorder_pb2
from services.gateway import problems

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
_MAX_BODY = 8192
_PATH = "/v1/recognitions"

REPORTS = Metric(
    "digits_gateway_outcome_reports_total",
    "Reports of refused or failed uploads sent to the recorder for the dashboard, by result (ok, failed).",
    ["result"],
)


class UploadOutcomes:
    """ASGI middleware: tallies the problem type of each failed upload."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tally: Tally[None] = Tally(self._report, FLUSH_SECONDS)
        self._gateway: Any = None  # the application, whose recorder client sends the reports

    async def _report(self, _: None, counts: Counts) -> None:
        try:
            await self._gateway.state.backends.recorder.CountUploadOutcomes(
                recorder_pb2.CountUploadOutcomesRequest(counts=counts), timeout=FLUSH_SECONDS
            )
            REPORTS.labels("ok").inc()
        except Exception as exc:  # noqa: BLE001  (best-effort: the dashboard loses a few counts)
            REPORTS.labels("failed").inc()
            log.warning("could not report upload outcomes", extra={"error": str(exc), "counts": counts})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != _PATH:
            await self.app(scope, receive, send)
            return
        status, body = 0, bytearray()

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400 and len(body) < _MAX_BODY:
                body.extend(message.get("body", b"")[: _MAX_BODY - len(body)])
                if not message.get("more_body"):
                    self._count(bytes(body), scope)
            await send(message)

        await self.app(scope, receive, watch)

    def _count(self, body: bytes, scope: dict[str, Any]) -> None:
        try:
            kind = json.loads(body).get("type", "")
        except (ValueError, AttributeError):
            return
        slug = kind.removeprefix(problems.TYPE_PREFIX) if isinstance(kind, str) else ""
        # Only upload refusals and failures: a bad token or query is not an upload's outcome.
        if slug in UPLOAD_OUTCOMES and "app" in scope:
            self._gateway = scope["app"]
            self.tally.add({slug: 1}, None)

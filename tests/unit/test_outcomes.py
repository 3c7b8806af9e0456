"""The gateway's tally of failed uploads for the dashboard (services/gateway/outcomes.py): which
answers it counts, and that it reports them as one call per period, off the request's path."""

from __future__ import annotations

import asyncio
import types

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.gateway import outcomes


class FakeRecorder:
    def __init__(self, fail: bool = False) -> None:
        self.reports: list[dict[str, int]] = []
        self.fail = fail

    async def CountUploadOutcomes(self, request, timeout):  # type: ignore[no-untyped-def]
        self.reports.append(dict(request.counts))
        if self.fail:
            raise RuntimeError("recorder down")


def app(recorder: FakeRecorder) -> outcomes.UploadOutcomes:
    async def upload(request: Request) -> JSONResponse:
        kind = request.query_params["answer"]
        if kind == "ok":
            return JSONResponse({"id": "x"}, status_code=201)
        return JSONResponse({"type": f"/problems/{kind}"}, status_code=422, media_type="application/problem+json")

    inner = Starlette(routes=[Route("/v1/recognitions", upload, methods=["POST", "GET"])])
    inner.state.backends = types.SimpleNamespace(recorder=recorder)
    return outcomes.UploadOutcomes(inner)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(outcomes, "FLUSH_SECONDS", 0.05)


async def send(asgi, *answers: str, method: str = "POST") -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t") as client:
        for answer in answers:
            await client.request(method, "/v1/recognitions", params={"answer": answer})


def test_refused_uploads_are_reported_together_and_nothing_else():
    asyncio.run(_refused_uploads_are_reported_together())


async def _refused_uploads_are_reported_together() -> None:
    recorder = FakeRecorder()
    asgi = app(recorder)
    # Counted: upload refusals. Not: a success, a problem that is not an upload's outcome, a GET.
    await send(asgi, "not-a-digit", "not-a-digit", "no-digit-found", "ok", "invalid-token")
    await send(asgi, "not-a-digit", method="GET")
    await asyncio.sleep(0.3)
    assert recorder.reports == [{"not-a-digit": 2, "no-digit-found": 1}]  # one call for the period


def test_a_failed_report_is_dropped_not_retried():
    asyncio.run(_a_failed_report_is_dropped())


async def _a_failed_report_is_dropped() -> None:
    recorder = FakeRecorder(fail=True)
    asgi = app(recorder)
    await send(asgi, "not-a-digit")
    await asyncio.sleep(0.3)
    assert recorder.reports == [{"not-a-digit": 1}]  # tried once: a retry could count twice
    recorder.fail = False
    await send(asgi, "empty-image")
    await asyncio.sleep(0.3)
    assert recorder.reports[1:] == [{"empty-image": 1}]

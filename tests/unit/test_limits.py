"""The gateway's concurrency limit, driven as ASGI with a small fake app that holds requests
open until released (no server, no network)."""

from __future__ import annotations

import asyncio
import json

from services.gateway.limits import ConcurrencyLimit


def scope(path: str = "/v1/recognitions") -> dict:
    return {"type": "http", "path": path, "method": "POST", "headers": [], "state": {"request_id": "r1"}}


async def _run() -> tuple[list[int], list[dict], int]:
    release = asyncio.Event()
    served: list[int] = []

    async def slow_app(scope, receive, send):  # type: ignore[no-untyped-def]
        await release.wait()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    limited = ConcurrencyLimit(slow_app, max_requests=2)
    answers: list[list[dict]] = []

    async def request(path: str = "/v1/recognitions") -> None:
        sent: list[dict] = []
        answers.append(sent)

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        await limited(scope(path), None, send)
        served.append(sent[0]["status"])

    admitted = [asyncio.create_task(request()) for _ in range(2)]
    await asyncio.sleep(0)
    await request()  # the third, while two are in flight: refused at once, not queued
    refused = answers[-1]
    health = asyncio.create_task(request("/healthz"))  # health checks are never refused
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*admitted, health)
    await request()  # capacity is back once they finished
    return served, refused, limited.active


def test_past_the_limit_a_request_gets_an_immediate_503_problem_and_health_is_exempt():
    served, refused, active = asyncio.run(_run())
    assert sorted(served) == [201, 201, 201, 201, 503]
    start, body = refused
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"1" and headers[b"content-type"] == b"application/problem+json"
    problem = json.loads(body["body"])
    assert problem["type"] == "/problems/overloaded" and problem["request_id"] == "r1"
    assert active == 0


def _refusals(hold: float, extra: int) -> tuple[list[float], int]:
    """With one request in flight, ``extra`` more at once: each refusal's delay, and the most
    refusals held at one time."""

    async def run() -> tuple[list[float], int]:
        release = asyncio.Event()

        async def slow_app(scope, receive, send):  # type: ignore[no-untyped-def]
            await release.wait()

        limited = ConcurrencyLimit(slow_app, max_requests=1, hold_seconds=hold)
        busy = asyncio.create_task(limited(scope(), None, _ignore))
        await asyncio.sleep(0)
        delays: list[float] = []
        most_held = 0

        async def refused() -> None:
            nonlocal most_held
            start = asyncio.get_running_loop().time()
            sent: list[dict] = []

            async def send(message):  # type: ignore[no-untyped-def]
                sent.append(message)

            task = asyncio.create_task(limited(scope(), None, send))
            await asyncio.sleep(0)
            most_held = max(most_held, limited.held)
            await task
            assert sent[0]["status"] == 503
            delays.append(asyncio.get_running_loop().time() - start)

        await asyncio.gather(*(refused() for _ in range(extra)))
        release.set()
        await busy
        return delays, most_held

    return asyncio.run(run())


async def _ignore(message):  # type: ignore[no-untyped-def]
    pass


def test_a_refusal_is_held_before_it_is_sent_so_instant_retries_cannot_storm_the_gateway():
    delays, most_held = _refusals(hold=0.2, extra=3)
    assert all(0.19 <= d < 1.0 for d in delays), delays
    assert most_held == 3


def test_at_most_four_times_the_limit_are_held_the_rest_are_refused_at_once():
    delays, most_held = _refusals(hold=0.2, extra=10)
    assert most_held == 4  # 4 × max_requests (1)
    assert sum(d < 0.1 for d in delays) == 6

"""Concurrent uploads through the real stack share RecognizeBatch calls, and each still gets
its own answer: its digit and its own record, or its own problem."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.helpers import DATA

SEVEN = (DATA / "seven.png").read_bytes()


def _metric(port: int, pattern: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(pattern + r" (\S+)", text))


def test_concurrent_uploads_share_calls_and_each_gets_its_own_answer(stack):  # type: ignore[no-untyped-def]
    batch_calls = r'digits_grpc_server_handled_total\{code="OK",method="/digits.v1.Recognizer/RecognizeBatch"\}'
    before = _metric(stack.config.recognizer_metrics_port, batch_calls)
    uploads = [("seven.png", SEVEN, "image/png")] * 40 + [("junk.png", b"not an image at all", "image/png")] * 8

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.config.gateway_url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/v1/recognitions", files={"image": u}) for u in uploads))

    responses = asyncio.run(send_all())
    sevens, junk = responses[:40], responses[40:]
    assert [r.status_code for r in sevens] == [201] * 40
    assert {r.json()["digit"] for r in sevens} == {7}
    assert len({r.json()["id"] for r in sevens}) == 40  # a record each
    assert [r.status_code for r in junk] == [415] * 8
    assert {r.json()["type"] for r in junk} == {"/problems/not-an-image"}
    assert _metric(stack.config.recognizer_metrics_port, batch_calls) > before  # calls were shared

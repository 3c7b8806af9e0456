"""Concurrent uploads share one ``RecognizeBatch`` call to the recognizer.

A gRPC call costs each Python service about a millisecond of CPU however small the image, more
than the model does for a digit; so under load the gateway sends what has queued up as one
call, as TF Serving's and Triton's clients do. No timer: an upload that finds fewer than
``max_calls`` calls in flight goes at once (alone, as a plain ``Recognize``), so a lone request
never waits; the others queue while those calls run and leave together when one returns.
Batches grow with the load by themselves and cost nothing at low load.

A batch is bounded by image count and bytes, far below the recognizer's per-call limits, and
each upload keeps its own deadline: one that waited past it is answered 503 without being sent.
An image the recognizer cannot read fails alone, as the same problem a single call gives.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import grpc
from prometheus_client import Histogram

from digits.v1 import recognizer_pb2
from services.gateway.backends import call, client_problem
from services.gateway.problems import Problem

BATCH_SIZE = Histogram(
    "digits_gateway_recognize_batch_size",
    "Uploads per call to the recognizer (1: a plain Recognize).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)


@dataclass
class _Upload:
    image: bytes
    content_type: str
    deadline: float  # monotonic
    include_fields: bool
    answer: asyncio.Future[recognizer_pb2.RecognizeResponse] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Coalescer:
    """``recognize(image)`` for many concurrent callers, over at most ``max_calls`` calls at a time."""

    def __init__(
        self, stub, timeout: float, max_calls: int = 4, max_images: int = 32, max_bytes: int = 1 << 20
    ) -> None:  # type: ignore[no-untyped-def]
        self._stub = stub
        self._timeout = timeout
        self._max_calls = max_calls
        self._max_images = max_images
        self._max_bytes = max_bytes
        self._queue: deque[_Upload] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # referenced, so none is collected mid-call

    async def recognize(
        self, image: bytes, content_type: str, include_fields: bool = False
    ) -> recognizer_pb2.RecognizeResponse:
        """The recognizer's answer for ``image`` (with the fields the model read, if asked);
        its failure as a Problem."""
        upload = _Upload(image, content_type, time.monotonic() + self._timeout, include_fields)
        self._queue.append(upload)
        self._dispatch()
        # Its own deadline, whatever the call it shares allows the others.
        try:
            return await asyncio.wait_for(asyncio.shield(upload.answer), self._timeout)
        except TimeoutError:
            upload.answer.cancel()  # not sent if still queued; its late answer is dropped
            raise _busy() from None
        except asyncio.CancelledError:  # the client went away
            upload.answer.cancel()
            raise

    def _dispatch(self) -> None:
        while self._queue and self._in_flight < self._max_calls:
            batch = self._take()
            if batch:
                self._in_flight += 1
                task = asyncio.get_running_loop().create_task(self._send(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Upload]:
        batch: list[_Upload] = []
        size = 0
        now = time.monotonic()
        while self._queue and len(batch) < self._max_images:
            upload = self._queue[0]
            if batch and size + len(upload.image) > self._max_bytes:
                break  # the next call takes it (a large image alone is still one call)
            self._queue.popleft()
            if upload.answer.done():  # the client went away
                continue
            if upload.deadline <= now:
                upload.answer.set_exception(_busy())
                continue
            batch.append(upload)
            size += len(upload.image)
        return batch

    async def _send(self, batch: list[_Upload]) -> None:
        try:
            BATCH_SIZE.observe(len(batch))
            # The latest deadline: an upload near its own end must not cut the call short for
            # the others; each waiter stops waiting at its own deadline (recognize()).
            timeout = max(0.0, max(u.deadline for u in batch) - time.monotonic())
            if len(batch) == 1:
                await self._one(batch[0], timeout)
            else:
                await self._many(batch, timeout)
        except Exception as exc:  # a bug, not a failed call: each waiter raises it (a logged 500)
            for upload in batch:
                if not upload.answer.done():
                    upload.answer.set_exception(exc)
        except BaseException:  # cancelled (the channel closing at shutdown): no waiter is left hanging
            for upload in batch:
                if not upload.answer.done():
                    upload.answer.set_exception(_busy())
            raise
        finally:
            self._in_flight -= 1
            self._dispatch()

    async def _one(self, upload: _Upload, timeout: float) -> None:
        request = recognizer_pb2.RecognizeRequest(
            image=upload.image, content_type=upload.content_type, include_fields=upload.include_fields
        )
        try:
            _settle(upload, await call("recognizer", self._stub.Recognize, request, timeout))
        except Problem as problem:
            _settle(upload, problem)

    async def _many(self, batch: list[_Upload], timeout: float) -> None:
        # Fields for all when any asks (the call has one flag; the gateway drops the others').
        request = recognizer_pb2.RecognizeBatchRequest(
            images=[u.image for u in batch], include_fields=any(u.include_fields for u in batch)
        )
        try:
            reply = await call("recognizer", self._stub.RecognizeBatch, request, timeout)
        except Problem as problem:
            for upload in batch:
                _settle(upload, problem)
            return
        if len(reply.results) != len(batch):  # a broken server: never pair answers by guesswork
            failure = Problem("dependency-failed", f"the recognizer could not answer ({grpc.StatusCode.INTERNAL.name})")
            for upload in batch:
                _settle(upload, failure)
            return
        for upload, result in zip(batch, reply.results):
            if result.HasField("error"):
                _settle(upload, client_problem(result.error.reason, result.error.message, "recognizer"))
            else:
                _settle(upload, result.recognition)


def _busy() -> Problem:
    return Problem("dependency-unavailable", "the recognizer is too busy; retry shortly", retry_after=1)


def _settle(upload: _Upload, outcome: recognizer_pb2.RecognizeResponse | Problem) -> None:
    if upload.answer.done():
        return
    if isinstance(outcome, Problem):
        # One exception object per waiter: a shared one would collect every waiter's traceback.
        upload.answer.set_exception(Problem(outcome.slug, outcome.detail, outcome.retry_after, **outcome.extra))
    else:
        upload.answer.set_result(outcome)

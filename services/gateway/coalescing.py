"""Concurrent uploads share calls: to the recognizer (``RecognizeBatch``) and to the recorder
(``RecordBatch``).

A gRPC call costs each Python service about a millisecond of CPU however small its message, more
than the model takes for a digit; and a Cassandra request costs its fixed part (waking threads,
the batch log) whatever it carries. So under load the gateway sends what has queued up as one
call, as TF Serving's and Triton's clients do. No timer: items that arrive in the same
event-loop turn leave together at its end, which is when uploads do arrive together (a batch
call's answer settles all its waiters in one turn, and each then asks the next service; sending
the first of them at once made calls of 1, 2 and the rest, and batching them gave 10-17% more
uploads/s at 4, 16 and 64 concurrent uploads, in interleaved runs). An item that finds no call
in flight and no company after that one turn goes alone (a plain ``Recognize`` or ``Record``);
with no other request in flight it goes at once, so a lone request waits for nothing. While
calls are in flight, a further call, up to ``max_calls``, leaves when two or more items are
waiting, and a lone waiting item leaves when a call returns or company arrives (a lone item in
a call of its own cost the most per upload: sending it at once gave 5-8% fewer uploads/s at
4-16 concurrent uploads). Batches grow with the load by themselves and cost nothing at low load.

A batch is bounded by item count and bytes, far below the services' per-call limits, and holds
items of one caller only (the same credentials: the recorder checks a call's token once). Each
item keeps its own deadline: one that waited past it is answered 503 without being sent. An item
the service refuses fails alone, as the same problem a single call gives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from prometheus_client import Histogram

from digits.trailers import REPLAYED
from digits.v1 import recognizer_pb2, recorder_pb2
from services.gateway.backends import call, client_problem
from services.gateway.problems import Problem

log = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "digits_gateway_recognize_batch_size",
    "Uploads per call to the recognizer (1: a plain Recognize).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
RECORD_BATCH_SIZE = Histogram(
    "digits_gateway_record_batch_size",
    "Records per call to the recorder (1: a plain Record).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)

Answer = TypeVar("Answer")


@dataclass
class _Item(Generic[Answer]):
    message: Any  # what a lone call would send
    size: int  # bytes, for the batch's bound
    key: Hashable  # items of one batch share it (their credentials)
    deadline: float  # monotonic
    answer: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Coalescer(Generic[Answer]):
    """Answers for many concurrent callers, over at most ``max_calls`` calls at a time.
    Subclasses say how one item (``_one``) and a batch (``_many``) are sent."""

    dependency = ""
    sizes: Histogram  # items per call

    def __init__(
        self, stub, timeout: float, max_calls: int = 4, max_items: int = 32, max_bytes: int = 1 << 20,
        company: Callable[[], bool] = lambda: True,
    ) -> None:  # type: ignore[no-untyped-def]
        self._stub = stub
        self._company = company  # whether other requests are in flight that may send items too
        self._timeout = timeout
        self._max_calls = max_calls
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._queue: deque[_Item[Answer]] = deque()
        self._in_flight = 0
        # Items that arrive in one event-loop turn are dispatched together, after it.
        self._opening = False  # the first after a quiet spell waits for company (_alone_after_a_turn)
        self._dispatch_due = False  # a _dispatch is scheduled for the end of this turn
        self._tasks: set[asyncio.Task[None]] = set()  # referenced, so none is collected mid-call

    async def _submit(self, message: Any, size: int, key: Hashable = ()) -> Answer:
        item: _Item[Answer] = _Item(message, size, key, time.monotonic() + self._timeout)
        self._queue.append(item)
        if len(self._queue) == 1 and self._in_flight == 0 and not self._opening:
            if not self._company() or await self._alone_after_a_turn(item):
                self._queue.popleft()
                return await self._alone(item)
            self._dispatch()
        elif not self._dispatch_due:  # after this turn, with whoever else arrives in it
            self._dispatch_due = True
            asyncio.get_running_loop().call_soon(self._dispatch_when_due)
        # Its own deadline, whatever the call it shares allows the others.
        try:
            return await asyncio.wait_for(asyncio.shield(item.answer), self._timeout)
        except TimeoutError:
            item.answer.cancel()  # not sent if still queued; its late answer is dropped
            raise self._busy() from None
        except asyncio.CancelledError:  # the client went away
            item.answer.cancel()
            raise

    async def _alone_after_a_turn(self, item: _Item[Answer]) -> bool:
        """Whether ``item``, the first after a quiet spell, is still alone after one event-loop
        turn. Uploads often arrive together: a batch call's answer settles all its waiters in
        one turn, and each then asks the next service; without the turn the first of them would
        go alone and the next few in a call of two. (Not asked when no other request is in
        flight: then no company can come, and the turn would only add latency.)"""
        self._opening = True  # meanwhile, _dispatch only queues
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:  # the client went away: the others must not wait on it
            item.answer.cancel()
            raise
        finally:
            self._opening = False
            if item.answer.cancelled():
                self._dispatch()
        return len(self._queue) == 1 and self._in_flight == 0

    async def _alone(self, item: _Item[Answer]) -> Answer:
        """Send ``item`` from the caller's own task: nothing queued and no call in flight. The
        queue's machinery (a task of its own, a shielded wait) would add an event-loop turn or
        two each way to every upload at low load. The call's own deadline is the item's."""
        self._in_flight += 1  # given back by _send, as for a dispatched batch
        try:
            await self._send([item])
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]  # the client went away
                item.answer.exception()  # _send settled it; read, or asyncio logs it as never retrieved
                raise
            # The call itself was cancelled (the channel closing at shutdown): _send answered 503.
        return await item.answer  # already settled: no wait

    def _dispatch_when_due(self) -> None:
        self._dispatch_due = False
        self._dispatch()

    def _dispatch(self) -> None:
        if self._opening:
            return
        while self._queue and self._in_flight < self._max_calls:
            if self._in_flight and len(self._queue) < 2:  # a lone item waits for company or a free line
                break
            batch = self._take()
            if batch:
                self._in_flight += 1
                task = asyncio.get_running_loop().create_task(self._send(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Item[Answer]]:
        """The next batch: the oldest live item, and the next ones of the same key that fit."""
        batch: list[_Item[Answer]] = []
        left: deque[_Item[Answer]] = deque()
        size = 0
        now = time.monotonic()
        while self._queue and len(batch) < self._max_items:
            item = self._queue.popleft()
            if item.answer.done():  # the client went away
                continue
            if item.deadline <= now:
                item.answer.set_exception(self._busy())
                continue
            if batch and (item.key != batch[0].key or size + item.size > self._max_bytes):
                left.append(item)  # another caller's, or too large: a later call takes it
                if size + item.size > self._max_bytes:
                    break
                continue
            batch.append(item)
            size += item.size
        self._queue.extendleft(reversed(left))
        return batch

    async def _send(self, batch: list[_Item[Answer]]) -> None:
        try:
            # The latest deadline: an item near its own end must not cut the call short for
            # the others; each waiter stops waiting at its own deadline (_submit).
            timeout = max(0.0, max(i.deadline for i in batch) - time.monotonic())
            self.sizes.observe(len(batch))
            if len(batch) == 1:
                await self._one(batch[0], timeout)
            else:
                await self._many(batch, timeout)
        except Problem as problem:  # the whole call failed
            for item in batch:
                _settle(item, problem)
        except Exception as exc:  # a bug, not a failed call: each waiter raises it (a logged 500)
            for item in batch:
                if not item.answer.done():
                    item.answer.set_exception(exc)
        except BaseException:  # cancelled (the channel closing at shutdown): no waiter is left hanging
            for item in batch:
                if not item.answer.done():
                    item.answer.set_exception(self._busy())
            raise
        finally:
            self._in_flight -= 1
            self._dispatch()

    async def _one(self, item: _Item[Answer], timeout: float) -> None:
        raise NotImplementedError

    async def _many(self, batch: list[_Item[Answer]], timeout: float) -> None:
        raise NotImplementedError

    def _settle_each(self, batch: list[_Item[Answer]], results: Any, answer: Callable[[Any], Answer]) -> None:
        """Give each item its result of a batch call: ``answer(result)``, or the problem of the
        result's ``error``. Results that are not one per item fail every item (a broken server:
        answers are never paired by guesswork)."""
        if len(results) != len(batch):
            failure = Problem("dependency-failed", f"the {self.dependency} could not answer ({grpc.StatusCode.INTERNAL.name})")
            for item in batch:
                _settle(item, failure)
            return
        for item, result in zip(batch, results):
            if result.HasField("error"):
                _settle(item, client_problem(result.error.reason, result.error.message, self.dependency))
            else:
                _settle(item, answer(result))

    def _busy(self) -> Problem:
        return Problem("dependency-unavailable", f"the {self.dependency} is too busy; retry shortly", retry_after=1)


class RecognizeCoalescer(Coalescer[recognizer_pb2.RecognizeResponse]):
    """``recognize(image)`` through Recognize and RecognizeBatch."""

    dependency = "recognizer"
    sizes = BATCH_SIZE

    async def recognize(
        self, image: bytes, content_type: str, include_fields: bool = False
    ) -> recognizer_pb2.RecognizeResponse:
        """The recognizer's answer for ``image`` (with the fields the model read, if asked);
        its failure as a Problem."""
        request = recognizer_pb2.RecognizeRequest(image=image, content_type=content_type, include_fields=include_fields)
        return await self._submit(request, len(image))

    async def _one(self, item: _Item[recognizer_pb2.RecognizeResponse], timeout: float) -> None:
        _settle(item, await call("recognizer", self._stub.Recognize, item.message, timeout))

    async def _many(self, batch: list[_Item[recognizer_pb2.RecognizeResponse]], timeout: float) -> None:
        # Fields for all when any asks (the call has one flag; the gateway drops the others').
        request = recognizer_pb2.RecognizeBatchRequest(
            images=[i.message.image for i in batch], include_fields=any(i.message.include_fields for i in batch)
        )
        reply = await call("recognizer", self._stub.RecognizeBatch, request, timeout)
        self._settle_each(batch, reply.results, lambda result: result.recognition)


Stored = tuple[recorder_pb2.Recognition, bool]  # the record, and whether it was replayed


class RecordCoalescer(Coalescer[Stored]):
    """``record(request, credentials)`` through Record and RecordBatch.

    A recorder older than RecordBatch (during a rolling upgrade, the gateway's pods may be new
    before the recorder's) answers it UNIMPLEMENTED: the batch then goes as single Records, and
    so do later batches for a minute, when RecordBatch is tried again."""

    dependency = "recorder"
    sizes = RECORD_BATCH_SIZE
    RETRY_BATCHES_AFTER = 60.0  # seconds

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._singles_until = 0.0  # monotonic: until then, no RecordBatch

    async def record(self, request: recorder_pb2.RecordRequest, credentials: tuple[tuple[str, str], ...]) -> Stored:
        """The stored record, and whether its Idempotency-Key had stored it before; the failure
        as a Problem."""
        return await self._submit(request, len(request.recognition.image), credentials)

    async def _one(self, item: _Item[Stored], timeout: float) -> None:
        trailers: dict[str, str] = {}
        stored = await call("recorder", self._stub.Record, item.message, timeout, item.key, trailers)  # type: ignore[arg-type]
        _settle(item, (stored, trailers.get(REPLAYED) == "true"))

    async def _many(self, batch: list[_Item[Stored]], timeout: float) -> None:
        if time.monotonic() < self._singles_until:
            await self._singles(batch, timeout)
            return
        request = recorder_pb2.RecordBatchRequest(requests=[i.message for i in batch])
        try:
            reply = await call(
                "recorder", self._stub.RecordBatch, request, timeout, batch[0].key,  # type: ignore[arg-type]
                passthrough=(grpc.StatusCode.UNIMPLEMENTED,),
            )  # fmt: skip
        except grpc.aio.AioRpcError:  # UNIMPLEMENTED: nothing of the batch was stored
            log.warning("the recorder does not know RecordBatch; sending single Records for a while")
            self._singles_until = time.monotonic() + self.RETRY_BATCHES_AFTER
            await self._singles(batch, timeout)
            return
        self._settle_each(batch, reply.results, lambda result: (result.recognition, result.replayed))

    async def _singles(self, batch: list[_Item[Stored]], timeout: float) -> None:
        async def one(item: _Item[Stored]) -> None:
            try:
                await self._one(item, timeout)
            except Problem as problem:
                _settle(item, problem)

        await asyncio.gather(*(one(item) for item in batch))


def _settle(item: _Item[Answer], outcome: Answer | Problem) -> None:
    if item.answer.done():
        return
    if isinstance(outcome, Problem):
        # One exception object per waiter: a shared one would collect every waiter's traceback.
        item.answer.set_exception(Problem(outcome.slug, outcome.detail, outcome.retry_after, **outcome.extra))
    else:
        item.answer.set_result(outcome)

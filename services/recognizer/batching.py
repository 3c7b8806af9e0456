"""Dynamic batching: concurrent requests share one model call.

A CNN on a CPU costs nearly the same per call for 1 image as for a few dozen, so under load
the recognizer waits a little for company instead of calling the model once per request. The
policy is TF Serving's: after the first item arrives, collect more until the batch is full or
``max_wait_seconds`` has passed (TF Serving's guidance for ``batch_timeout_micros`` is about
1 ms on CPU), then make one call. While that call runs, new items queue up and form the next
batch, so batches grow by themselves as load rises.

Waiting only pays when company is coming. An optional ``incoming`` callable says how many items
are already on their way (the server counts images being decoded); when it says none, the
batch runs at once, so a lone request never pays the wait.

The model runs on one dedicated thread: calls never overlap (one interpreter, not thread-safe;
see model.py), and the event loop is not blocked by a batch. With ``inline_after_lull``, a
lone item that comes after a lull (no model call for ``max_wait_seconds``, nothing queued,
nothing on its way) runs at once on the caller's thread instead: for a model call of a
fraction of a millisecond, the two hand-offs to the model thread and back cost as much as the
call (each a wake-up across cores). A lull says the load is light, so nobody is kept waiting;
an item that follows the last call more closely takes the batching path, so that a burst of
lone items still shares model calls. Calls never overlap: the model thread is idle whenever
an item runs inline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

# Called on the event loop just before each model call, with the batch size and how long each
# item waited in the queue: the hook for metrics, so this module stays free of them.
BatchObserver = Callable[[int, Sequence[float]], None]


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new items."""


@dataclass
class _Item(Generic[In, Out]):
    value: In
    future: asyncio.Future[Out]
    enqueued: float


class Batcher(Generic[In, Out]):
    """Coalesces ``submit`` calls into calls of ``run_batch(items) -> outputs`` (same length, same order).

    Create it on the event loop that will call ``submit``; ``close`` drains it.
    """

    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        max_batch_size: int,
        max_wait_seconds: float,
        observe: BatchObserver | None = None,
        thread_name: str = "inference",
        incoming: Callable[[], int] | None = None,
        inline_after_lull: bool = False,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, not {max_batch_size}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must not be negative, not {max_wait_seconds}")
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self._run_batch = run_batch
        self._observe = observe
        self._incoming = incoming
        self._inline_after_lull = inline_after_lull
        self._last_call_ended = -math.inf  # perf_counter() when the last model call returned
        self._pending: deque[_Item[In, Out]] = deque()
        self._has_items = asyncio.Event()
        self._run_now = asyncio.Event()
        self._closing = False
        self._running = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, value: In) -> Out:
        """Queue ``value`` and return its output once its batch has run; raises what the batch raised."""
        (output,) = await self.submit_many([value])
        return output

    async def submit_many(self, values: Sequence[In]) -> list[Out]:
        """Queue ``values`` together (so they share a call) and return their outputs in order;
        raises what a batch of theirs raised."""
        if self._closing:
            raise BatcherClosed("the batcher is shutting down")
        if not values:
            return []
        if len(values) == 1 and self._inline_after_lull and self._in_a_lull():
            return [self._run_inline(values[0])]
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        items: list[_Item[In, Out]] = [_Item(value, loop.create_future(), now) for value in values]
        self._pending.extend(items)
        self._signal()
        return list(await asyncio.gather(*(item.future for item in items)))

    def _in_a_lull(self) -> bool:
        quiet = time.perf_counter() - self._last_call_ended >= self.max_wait_seconds
        return quiet and self.idle and not self._company_coming()

    def _run_inline(self, value: In) -> Out:
        if self._observe is not None:
            self._observe(1, [0.0])
        self._running = True
        try:
            return self._call_model([value])[0]
        finally:
            self._running = False
            self._last_call_ended = time.perf_counter()

    def _call_model(self, values: list[In]) -> Sequence[Out]:
        """``run_batch(values)``, checked to answer each of them (on whichever thread runs it)."""
        outputs = self._run_batch(values)
        if len(outputs) != len(values):
            raise RuntimeError(f"run_batch returned {len(outputs)} outputs for {len(values)} inputs")
        return outputs

    @property
    def idle(self) -> bool:
        """Nothing queued and no model call running."""
        return not self._pending and not self._running

    async def close(self) -> None:
        """Stop taking items; run everything already queued (without waiting to fill); stop the thread."""
        self._closing = True
        self._signal()
        try:
            await self._collector
        finally:
            self._executor.shutdown(wait=True)

    def _signal(self) -> None:
        if self._pending or self._closing:  # closing wakes the collector so that it can return
            self._has_items.set()
        # Run without waiting (further) when the batch is full, when nothing more is on its
        # way, or when closing (drain at once).
        if len(self._pending) >= self.max_batch_size or self._closing or not self._company_coming():
            self._run_now.set()

    async def _collect(self) -> None:
        while True:
            await self._has_items.wait()
            if not self._pending and self._closing:
                return
            if not self._run_now.is_set() and self.max_wait_seconds > 0 and self._company_coming():
                try:
                    await asyncio.wait_for(self._run_now.wait(), self.max_wait_seconds)
                except TimeoutError:
                    pass
            batch = self._take()
            if batch:
                await self._run(batch)

    def _company_coming(self) -> bool:
        return self._incoming is None or self._incoming() > 0

    def _take(self) -> list[_Item[In, Out]]:
        batch: list[_Item[In, Out]] = []
        while self._pending and len(batch) < self.max_batch_size:
            item = self._pending.popleft()
            if not item.future.cancelled():  # the caller went away (deadline, disconnect)
                batch.append(item)
        if not self._pending and not self._closing:
            self._has_items.clear()
        if len(self._pending) < self.max_batch_size and not self._closing:
            self._run_now.clear()
        return batch

    async def _run(self, batch: list[_Item[In, Out]]) -> None:
        if self._observe is not None:
            now = time.perf_counter()
            self._observe(len(batch), [now - item.enqueued for item in batch])
        values = [item.value for item in batch]
        self._running = True
        try:
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(self._executor, self._call_model, values)
        except Exception as exc:  # every waiter of this batch sees the failure; the next batch may succeed
            log.exception("batch failed", extra={"batch_size": len(batch)})
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._running = False
            self._last_call_ended = time.perf_counter()
        for item, output in zip(batch, outputs):
            if not item.future.done():
                item.future.set_result(output)

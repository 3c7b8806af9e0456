"""The dynamic batcher, driven by a small fake model (``FakeModel``: doubles numbers and
records each call) instead of TensorFlow, so each test is fast and shows one property.

Timing assertions are deliberately loose (an order of magnitude): the machine is shared.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from services.recognizer.batching import Batcher, BatcherClosed


class FakeModel:
    """A fake model: returns each input doubled and records the batches and the calling thread."""

    def __init__(self, fail_with: Exception | None = None, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.fail_with = fail_with
        self.gate = gate  # when set, each call blocks until the gate opens: a slow model
        self.entered = threading.Event()

    def __call__(self, values: list[int]) -> list[int]:
        self.threads.add(threading.get_ident())
        self.batches.append(list(values))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        if self.fail_with is not None:
            raise self.fail_with
        return [2 * v for v in values]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


def test_concurrent_submissions_share_one_model_call_off_the_event_loop():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=0.5)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        assert results == [2 * i for i in range(10)]
        assert model.batches == [list(range(10))]
        assert threading.get_ident() not in model.threads

    run(main)


def test_batches_never_exceed_the_maximum_and_every_caller_gets_its_own_output():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=4, max_wait_seconds=0.5)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        assert results == [2 * i for i in range(10)]
        assert [len(b) for b in model.batches] == [4, 4, 2]
        assert sorted(v for b in model.batches for v in b) == list(range(10))

    run(main)


def test_a_lone_request_waits_about_max_wait_for_company():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=0.3)
        start = time.perf_counter()
        assert await batcher.submit(1) == 2
        elapsed = time.perf_counter() - start
        await batcher.close()
        assert 0.25 <= elapsed < 3.0  # waited for the timeout, and not for ages
        assert model.batches == [[1]]

    run(main)


def test_a_full_batch_runs_without_waiting_for_the_timeout():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=4, max_wait_seconds=30)
        start = time.perf_counter()
        assert await asyncio.gather(*(batcher.submit(i) for i in range(4))) == [0, 2, 4, 6]
        assert time.perf_counter() - start < 10  # far below the 30 s wait
        await batcher.close()

    run(main)


def test_without_batching_each_item_is_its_own_call():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=1, max_wait_seconds=0)
        assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 2, 4, 6, 8]
        await batcher.close()
        assert model.batches == [[0], [1], [2], [3], [4]]

    run(main)


def test_a_failing_call_fails_every_waiter_of_that_batch_and_the_batcher_recovers():
    model = FakeModel(fail_with=ValueError("model exploded"))

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=0.2)
        outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        assert len(outcomes) == 3
        assert all(isinstance(o, ValueError) and "exploded" in str(o) for o in outcomes)
        model.fail_with = None
        assert await batcher.submit(5) == 10
        await batcher.close()

    run(main)


def test_a_model_returning_the_wrong_number_of_outputs_is_an_error_for_each_waiter():
    async def main() -> None:
        batcher = Batcher(lambda values: [0], max_batch_size=64, max_wait_seconds=0.2)
        outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(2)), return_exceptions=True)
        assert all(isinstance(o, RuntimeError) and "2 inputs" in str(o) for o in outcomes)
        await batcher.close()

    run(main)


def test_close_finishes_the_running_and_the_queued_items_then_refuses_new_ones():
    gate = threading.Event()
    model = FakeModel(gate=gate)

    async def main() -> None:
        # A slow first batch is running while two more items queue behind it.
        batcher = Batcher(model, max_batch_size=1, max_wait_seconds=0)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.to_thread(model.entered.wait, 10)
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # still draining
        with pytest.raises(BatcherClosed):
            await batcher.submit(4)
        gate.set()
        start = time.perf_counter()
        assert await asyncio.gather(first, *queued) == [2, 4, 6]
        await closing
        assert time.perf_counter() - start < 10
        assert model.batches == [[1], [2], [3]]

    run(main)


def test_close_runs_a_partial_batch_at_once_instead_of_waiting_to_fill_it():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=30)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await batcher.close()
        assert await asyncio.gather(*waiting) == [0, 2, 4]
        assert time.perf_counter() - start < 10  # far below the 30 s wait
        assert model.batches == [[0, 1, 2]]

    run(main)


def test_close_of_an_idle_batcher_returns():
    async def main() -> None:
        batcher = Batcher(FakeModel(), max_batch_size=8, max_wait_seconds=0.001)
        await asyncio.wait_for(batcher.close(), 10)
        with pytest.raises(BatcherClosed):
            await batcher.submit(1)

    run(main)


def test_a_caller_that_gave_up_before_its_batch_formed_is_skipped():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=0.3)
        abandoned = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        abandoned.cancel()
        assert await kept == 4
        await batcher.close()
        assert model.batches == [[2]]

    run(main)


@pytest.mark.parametrize(("size", "wait"), [(0, 0.001), (8, -1.0)])
def test_nonsense_settings_are_refused(size, wait):
    async def main() -> None:
        with pytest.raises(ValueError):
            Batcher(FakeModel(), max_batch_size=size, max_wait_seconds=wait)

    run(main)


def test_a_lone_item_runs_at_once_when_nothing_else_is_on_its_way():
    model = FakeModel()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=2.0, incoming=lambda: 0)
        start = time.perf_counter()
        assert await batcher.submit(1) == 2
        assert time.perf_counter() - start < 1.0  # did not wait the 2 s for company
        await batcher.close()

    run(main)


def test_the_batcher_waits_for_items_announced_as_on_their_way():
    model = FakeModel()
    on_the_way = [1]

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=2.0, incoming=lambda: on_the_way[0])
        start = time.perf_counter()
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.2)  # the announced item is still being decoded
        on_the_way[0] = 0
        second = await batcher.submit(2)
        assert (await first, second) == (2, 4)
        assert model.batches == [[1, 2]]  # the first waited and shared the call
        assert time.perf_counter() - start < 1.5  # ...but no longer than until the last one came
        await batcher.close()

    run(main)


def lull_batcher(model: FakeModel, **settings) -> Batcher:  # type: ignore[no-untyped-def]
    """A batcher that runs a lone item inline after a lull; nothing is ever announced as coming."""
    return Batcher(model, max_batch_size=64, max_wait_seconds=2.0, incoming=lambda: 0, inline_after_lull=True,
                   **settings)  # fmt: skip


def test_a_lone_item_after_a_lull_runs_on_the_callers_thread_when_asked():
    model = FakeModel()
    observed: list[tuple[int, list[float]]] = []

    async def main() -> None:
        batcher = lull_batcher(model, observe=lambda size, waits: observed.append((size, list(waits))))
        assert await batcher.submit(3) == 6
        assert model.threads == {threading.get_ident()}  # the event loop's own thread: no hand-off
        assert model.batches == [[3]]
        assert observed == [(1, [0.0])]  # the metrics still see the call
        await batcher.close()

    run(main)


def test_an_item_arriving_while_a_batch_runs_waits_for_the_model_thread_even_when_inline_is_allowed():
    gate = threading.Event()
    model = FakeModel(gate=gate)
    on_the_way = [1]

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=64, max_wait_seconds=0.01, incoming=lambda: on_the_way[0],
                          inline_after_lull=True)  # fmt: skip
        first = asyncio.ensure_future(batcher.submit(1))  # company announced: queued, not inline
        await asyncio.to_thread(model.entered.wait, 10)  # its batch now runs on the model thread
        on_the_way[0] = 0
        second = asyncio.ensure_future(batcher.submit(2))  # the model is busy: never a second caller
        await asyncio.sleep(0.05)
        assert model.batches == [[1]]
        gate.set()
        assert (await first, await second) == (2, 4)
        assert model.batches == [[1], [2]]
        assert threading.get_ident() not in model.threads
        await batcher.close()

    run(main)


def test_an_inline_call_that_fails_fails_its_caller_alone_and_the_next_one_succeeds():
    model = FakeModel(fail_with=RuntimeError("model broke"))

    async def main() -> None:
        batcher = lull_batcher(model)
        with pytest.raises(RuntimeError, match="model broke"):
            await batcher.submit(1)
        model.fail_with = None
        assert batcher.idle
        assert await batcher.submit(2) == 4
        await batcher.close()

    run(main)


def test_a_lone_item_that_closely_follows_the_last_call_takes_the_batching_path():
    model = FakeModel()

    async def main() -> None:
        batcher = lull_batcher(model)
        assert await batcher.submit(1) == 2  # the first call ever: after a lull
        assert await batcher.submit(2) == 4  # within max_wait of it: a burst may be starting
        assert model.batches == [[1], [2]]
        assert len(model.threads) == 2 and threading.get_ident() in model.threads
        await batcher.close()

    run(main)


def test_items_submitted_together_share_one_call_even_after_a_lull():
    model = FakeModel()

    async def main() -> None:
        batcher = lull_batcher(model)
        assert await batcher.submit_many([1, 2, 3]) == [2, 4, 6]
        assert await batcher.submit_many([]) == []
        assert model.batches == [[1, 2, 3]]
        assert threading.get_ident() not in model.threads
        await batcher.close()

    run(main)

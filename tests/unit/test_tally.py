"""The dashboard's tally: counts added in memory, written once an interval, one batch an hour.

The writer here is a list that records what would be written (a fake standing in for the
store's counter batch); the integration tests read real counters back from Cassandra."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from services.recorder.stats import Increments
from services.recorder.tally import Tally

T0 = datetime(2026, 12, 6, 10, 15, tzinfo=timezone.utc)


def test_many_adds_become_one_write_an_hour() -> None:
    async def scenario() -> list[tuple[Increments, datetime]]:
        written: list[tuple[Increments, datetime]] = []

        async def write(increments: Increments, hour: datetime) -> None:
            written.append((increments, hour))

        tally = Tally(write, every=60)
        for n in range(100):
            tally.add({("recognitions", ""): 1, ("digit", str(n % 2)): 1}, T0 + timedelta(seconds=n))
        tally.add({("recognitions", ""): 1}, T0 + timedelta(hours=1))
        tally.add({}, T0)  # nothing to count: no write
        assert tally.pending == 4
        await tally.flush()
        assert tally.pending == 0
        await tally.flush()  # nothing left: nothing written again
        return written

    written = asyncio.run(scenario())
    assert written == [
        ({("recognitions", ""): 100, ("digit", "0"): 50, ("digit", "1"): 50}, T0.replace(minute=0)),
        ({("recognitions", ""): 1}, T0.replace(hour=11, minute=0)),
    ]


def test_a_failed_write_is_dropped_not_retried_and_the_rest_still_written() -> None:
    async def scenario() -> list[datetime]:
        tried: list[datetime] = []

        async def write(increments: Increments, hour: datetime) -> None:
            tried.append(hour)
            if hour == T0.replace(minute=0):
                raise TimeoutError("a counter write timed out: it may have landed")

        tally = Tally(write, every=60)
        tally.add({("recognitions", ""): 1}, T0)
        tally.add({("recognitions", ""): 1}, T0 + timedelta(hours=1))
        await tally.flush()
        await tally.flush()
        return tried

    assert asyncio.run(scenario()) == [T0.replace(minute=0), T0.replace(hour=11, minute=0)]


def test_run_writes_every_interval_in_the_background() -> None:
    async def scenario() -> int:
        writes = 0

        async def write(increments: Increments, hour: datetime) -> None:
            nonlocal writes
            writes += 1

        tally = Tally(write, every=0.01)
        runner = asyncio.create_task(tally.run())
        tally.add({("recognitions", ""): 1}, T0)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if writes:
                break
        tally.add({("recognitions", ""): 1}, T0)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if writes == 2:
                break
        runner.cancel()
        return writes

    assert asyncio.run(scenario()) == 2


def test_a_stop_during_a_write_lets_the_write_finish_and_then_writes_the_rest() -> None:
    async def scenario() -> list[Increments]:
        written: list[Increments] = []
        writing = asyncio.Event()

        async def write(increments: Increments, hour: datetime) -> None:
            writing.set()
            await asyncio.sleep(0.05)  # a counter batch on its way to Cassandra
            written.append(increments)

        tally = Tally(write, every=0.01)
        runner = asyncio.create_task(tally.run())
        tally.add({("recognitions", ""): 1}, T0)
        await writing.wait()
        tally.add({("recognitions", ""): 2}, T0)  # arrives while the first write is in flight
        runner.cancel()  # the service stops: finish_counting cancels the writer, then flushes
        await tally.flush()
        return written

    assert asyncio.run(scenario()) == [{("recognitions", ""): 1}, {("recognitions", ""): 2}]

"""digits/tally.py: counts added in memory, written once a period, one write per group (the
recorder's groups are UTC hours).

The writer here is a list that records what would be written (a fake standing in for the
store's counter batch or the recorder call); the integration tests read real counters back
from Cassandra, and tests/unit/test_outcomes.py drives the gateway's use."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from digits.tally import Counts, Tally

HOUR = datetime(2026, 12, 6, 10, tzinfo=timezone.utc)
NEXT_HOUR = HOUR.replace(hour=11)


def test_many_adds_become_one_write_a_group() -> None:
    async def scenario() -> list[tuple[Counts, datetime]]:
        written: list[tuple[Counts, datetime]] = []

        async def write(hour: datetime, counts: Counts) -> None:
            written.append((counts, hour))

        tally: Tally[datetime] = Tally(write, every=60)
        for n in range(100):
            tally.add({("recognitions", ""): 1, ("digit", str(n % 2)): 1}, HOUR)
        tally.add({("recognitions", ""): 1}, NEXT_HOUR)
        tally.add({}, HOUR)  # nothing to count: no write
        assert tally.pending == 4
        await tally.flush()
        assert tally.pending == 0
        await tally.flush()  # nothing left: nothing written again
        await tally.close(1)
        return written

    written = asyncio.run(scenario())
    assert written == [
        ({("recognitions", ""): 100, ("digit", "0"): 50, ("digit", "1"): 50}, HOUR),
        ({("recognitions", ""): 1}, NEXT_HOUR),
    ]


def test_a_failed_write_is_dropped_not_retried_and_the_rest_still_written() -> None:
    async def scenario() -> list[datetime]:
        tried: list[datetime] = []

        async def write(hour: datetime, counts: Counts) -> None:
            tried.append(hour)
            if hour == HOUR:
                raise TimeoutError("a counter write timed out: it may have landed")

        tally: Tally[datetime] = Tally(write, every=60)
        tally.add({("recognitions", ""): 1}, HOUR)
        tally.add({("recognitions", ""): 1}, NEXT_HOUR)
        await tally.flush()
        await tally.flush()
        await tally.close(1)
        return tried

    assert asyncio.run(scenario()) == [HOUR, NEXT_HOUR]


def test_the_writer_runs_in_the_background_while_there_is_something_to_write() -> None:
    async def scenario() -> int:
        writes = 0

        async def write(hour: datetime, counts: Counts) -> None:
            nonlocal writes
            writes += 1

        tally: Tally[datetime] = Tally(write, every=0.01)
        tally.add({("recognitions", ""): 1}, HOUR)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if writes:
                break
        await asyncio.sleep(0.05)  # a quiet period: the writer stops; the next add starts it again
        tally.add({("recognitions", ""): 1}, HOUR)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if writes == 2:
                break
        await tally.close(1)
        return writes

    assert asyncio.run(scenario()) == 2


def test_a_stop_during_a_write_lets_the_write_finish_and_then_writes_the_rest() -> None:
    async def scenario() -> list[Counts]:
        written: list[Counts] = []
        writing = asyncio.Event()

        async def write(hour: datetime, counts: Counts) -> None:
            writing.set()
            await asyncio.sleep(0.05)  # a counter batch on its way to Cassandra
            written.append(counts)

        tally: Tally[datetime] = Tally(write, every=0.01)
        tally.add({("recognitions", ""): 1}, HOUR)
        await writing.wait()
        tally.add({("recognitions", ""): 2}, HOUR)  # arrives while the first write is in flight
        await tally.close(1)  # the service stops: the writer is cancelled, the rest written
        return written

    assert asyncio.run(scenario()) == [{("recognitions", ""): 1}, {("recognitions", ""): 2}]

"""The dashboard's counters, added up in memory and written every second or so.

A Cassandra counter increment is among its dearest writes (a read before the write, under a
lock): one counter batch per stored record cost about as much Cassandra CPU as the record
itself. The recorder adds each record's increments to a tally instead, and a background task
writes the tally as one counter batch per UTC hour every ``RECORDER_STATS_FLUSH_SECONDS``.

The counts were already best-effort (see stats.py) and stay so: a recorder that dies
uncleanly loses the last interval's counts (at most one second by default); a graceful stop
writes what is left. A failed write is counted and dropped, never retried, since a timed-out
increment may have landed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from services.recorder import failures
from services.recorder.metrics import ERRORS
from services.recorder.paging import hour_of
from services.recorder.stats import Increments

log = logging.getLogger(__name__)

Write = Callable[[Increments, datetime], Awaitable[None]]


class Tally:
    """``add(increments, moment)`` now; ``run()`` writes them through ``write`` every ``every`` s."""

    def __init__(self, write: Write, every: float = 1.0) -> None:
        self._write = write
        self._every = every
        # Hour -> (metric, key) -> n. Bounded by the keys (see stats.py) times the hours that
        # receive records within one interval: usually one.
        self._hours: dict[datetime, collections.Counter[tuple[str, str]]] = {}
        self._flushing = asyncio.Lock()

    def add(self, increments: Increments, moment: datetime) -> None:
        if increments:
            self._hours.setdefault(hour_of(moment), collections.Counter()).update(increments)

    @property
    def pending(self) -> int:
        """Counters not written yet."""
        return sum(len(counts) for counts in self._hours.values())

    async def run(self) -> None:
        """Write the tally every interval, until cancelled. Cancelled while writing, the write
        still finishes (a cancelled counter write may or may not have landed: a count lost or
        kept at random), and a ``flush`` after it waits for it."""
        while True:
            await asyncio.sleep(self._every)
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Write everything added so far; what is added meanwhile waits for the next flush."""
        async with self._flushing:
            hours, self._hours = self._hours, {}
            for hour, counts in sorted(hours.items()):
                try:
                    await self._write(dict(counts), hour)
                except Exception as exc:  # noqa: BLE001  (a count is best-effort: never anyone's failure)
                    ERRORS.labels("count", failures.kind(exc)).inc()
                    log.warning("could not count", extra={"error": str(exc), "hour": hour.isoformat(), "counters": len(counts)})

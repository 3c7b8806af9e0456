"""Counts added up in memory and written in the background, one write per group a period.

The dashboard's counters are counted this way twice: the gateway tallies the uploads it
refused and reports them to the recorder (``CountUploadOutcomes``), and the recorder tallies
each stored record's increments and writes them to Cassandra's counters, per UTC hour. Either
way, many events become one write a period, nobody waits for it, and a counter write is the
dearest kind (a call, or Cassandra's read-before-write under a lock).

Counts are best-effort: a failed write is dropped, never retried (a counter write that timed
out may have landed, so a retry could count twice), and what a process has not written when
it dies is lost. ``close`` writes what is left at a graceful stop. The writer runs only while
there is something to write: the first ``add`` after a quiet period starts it again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

G = TypeVar("G", bound=Hashable)  # what one write covers: an hour, or nothing in particular
Counts = dict[Hashable, int]


class Tally(Generic[G]):
    """``add(counts, group)`` now; ``write(group, counts)`` every ``every`` seconds, per group.

    ``write`` counts and logs its own failures (each caller has its metric); anything else it
    raises is logged here, and the other groups are still written.
    """

    def __init__(self, write: Callable[[G, Counts], Awaitable[None]], every: float) -> None:
        self._write = write
        self._every = every
        self._groups: dict[G, collections.Counter[Hashable]] = {}
        self._writing = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None

    def add(self, counts: Mapping[Hashable, int], group: G) -> None:
        """Count now (inside the event loop); written within ``every`` seconds."""
        if not counts:
            return
        self._groups.setdefault(group, collections.Counter()).update(counts)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run())

    @property
    def pending(self) -> int:
        """Counts not written yet (distinct keys over all groups)."""
        return sum(len(counts) for counts in self._groups.values())

    async def flush(self) -> None:
        """Write everything added so far; what is added meanwhile waits for the next period."""
        async with self._writing:
            groups, self._groups = self._groups, {}
            for group, counts in groups.items():
                try:
                    await self._write(group, dict(counts))
                except Exception:  # a bug in a writer: its counts are lost, not the others'
                    log.exception("could not write counts", extra={"counts": len(counts)})

    async def close(self, seconds: float) -> None:
        """At a graceful stop: stop the writer and write what is left, for at most ``seconds``."""
        if self._writer is not None:
            self._writer.cancel()
        try:
            await asyncio.wait_for(self.flush(), seconds)
        except TimeoutError:
            log.warning("counts not written at shutdown", extra={"counts": self.pending})

    async def _run(self) -> None:
        """Writes every period until a period adds nothing. Cancelled while writing, the write
        still finishes (a cancelled counter write may or may not have landed: a count lost or
        kept at random), and a ``flush`` after it waits for it."""
        while self._groups:
            await asyncio.sleep(self._every)
            await asyncio.shield(self.flush())

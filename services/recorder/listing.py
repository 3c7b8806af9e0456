"""Listing records newest first, page by page, across the partitions that hold them.

A listing is a walk over buckets (UTC days), newest first, resuming at a ``Cursor`` (a day and
the last id returned). ``page_through`` reads buckets in waves: one, then two, four... at once,
so a sparse history does not cost a round trip per bucket, while a dense one reads only the
first. A user's day is one partition. A day of the time log is hours, and an hour is up to
``SHARDS`` partitions: ``hour_rows`` merges them.

Order is Cassandra's timeuuid order, which is time first and then the remaining eight bytes
compared as *signed* bytes. Python's ``UUID`` ordering (the integer) is not: ``timeuuid_key``
is what a merge of partitions must sort by, so that "the rows below this id" means the same
thing here and in each partition's ``id < ?``.
"""

from __future__ import annotations

import asyncio
import math
import struct
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from cassandra.util import min_uuid_from_time

from services.recorder.ids import id_time
from services.recorder.paging import Cursor, UserQuery, WindowQuery, day_of, days_back, hour_of
from services.recorder.records import as_date

B = TypeVar("B")
Rows = list[dict[str, Any]]
# fetch(bucket, after, limit): up to ``limit`` rows of ``bucket``, newest first, below ``after``.
Fetch = Callable[[B, "uuid.UUID | None", int], Awaitable[Rows]]


def timeuuid_key(value: uuid.UUID) -> tuple[int, tuple[int, ...]]:
    """Sorts like Cassandra's timeuuid: by time, then the last 8 bytes as signed bytes."""
    return value.time, struct.unpack(">8b", value.bytes[8:])


def _newest_first(rows: Rows) -> Rows:
    return sorted(rows, key=lambda row: timeuuid_key(row["id"]), reverse=True)


async def page_through(
    buckets: Sequence[B], cursor: Cursor | None, size: int, fetch: Fetch, max_wave: int, more: B | None = None
) -> tuple[Rows, Cursor | None]:
    """Up to ``size`` rows from ``buckets`` (newest first), resuming at ``cursor``, and where the
    next page starts (None: nothing is left).

    One row more than needed is asked of each bucket, so that a page that ends exactly at a
    bucket's last row points to the next bucket rather than to an empty read. ``more`` is where
    to continue when ``buckets`` was cut short (the caller read only so many of them).
    """
    if cursor is not None:
        buckets = [b for b in buckets if b <= cursor.bucket]  # type: ignore[operator]
    found: Rows = []
    start, wave = 0, 1
    while start < len(buckets):
        group = buckets[start : start + wave]
        need = size - len(found)
        answers = await asyncio.gather(
            *(fetch(b, cursor.after if cursor and b == cursor.bucket else None, need + 1) for b in group)
        )
        for i, (bucket, rows) in enumerate(zip(group, answers)):
            taken = rows[: size - len(found)]
            found += taken
            if len(found) == size:
                if len(rows) > len(taken):
                    return found, Cursor(bucket, found[-1]["id"])  # type: ignore[arg-type]
                if start + i + 1 < len(buckets):
                    return found, Cursor(buckets[start + i + 1])  # type: ignore[arg-type]
                return found, Cursor(more) if more is not None else None  # type: ignore[arg-type]
        start += len(group)
        wave = min(wave * 2, max_wave)
    return found, Cursor(more) if more is not None else None  # type: ignore[arg-type]


async def hour_rows(shards: Sequence[int], limit: int, fetch: Callable[[int, int], Awaitable[Rows]]) -> Rows:
    """The newest ``limit`` rows of one hour, merged from its ``shards``.

    ``fetch(shard, n)`` reads up to ``n`` rows of a shard (newest first, within the listing's
    bounds). Records spread evenly over the shards, so each is first asked for about twice its
    share of ``limit``. A shard that returned all it was asked for, and whose last row is still
    on the page, may hold more rows the page needs: only those shards are read again, for the
    full ``limit``. Two rounds at most, and about 2 x limit rows read, not shards x limit.
    """
    if not shards:
        return []
    first = limit if len(shards) == 1 else min(limit, math.ceil(2 * limit / len(shards)) + 2)
    answers = dict(zip(shards, await asyncio.gather(*(fetch(s, first) for s in shards))))
    merged = _newest_first([row for rows in answers.values() for row in rows])
    cutoff = timeuuid_key(merged[limit - 1]["id"]) if len(merged) >= limit else None
    again = [
        s
        for s, rows in answers.items()
        if len(rows) == first < limit and (cutoff is None or timeuuid_key(rows[-1]["id"]) > cutoff)
    ]
    if again:
        for s, rows in zip(again, await asyncio.gather(*(fetch(s, limit) for s in again))):
            answers[s] = rows
        merged = _newest_first([row for rows in answers.values() for row in rows])
    return merged[:limit]


def hours_of_day(index_rows: Rows) -> tuple[list[datetime], dict[datetime, list[int]]]:
    """The hours an index partition lists, newest first, and the shards of each."""
    shards: dict[datetime, list[int]] = {}
    for row in index_rows:
        shards.setdefault(row["hour"], []).append(row["shard"])
    return sorted(shards, reverse=True), shards


Execute = Callable[[Any, Sequence[Any]], Awaitable[Rows]]


class Listings:
    """The listing queries of one keyspace; ``execute(statement, values)`` runs one query within
    the caller's deadline."""

    USER_WAVE = 8  # days of a history read at once, at most
    HOUR_WAVE = 4  # hours of the time log read at once (each up to SHARDS queries)
    DAYS_PER_READ = 400  # of user_days per page: a page needs few, unless records were deleted

    def __init__(self, prepare: Callable[[str], Any], keyspace: str, columns: str) -> None:
        ks = keyspace
        self._user_days = prepare(f"SELECT day FROM {ks}.user_days WHERE user = ? AND day <= ? LIMIT ?")
        by_user = f"SELECT {columns} FROM {ks}.recognitions_by_user_day WHERE user = ? AND day = ?"
        self._by_user = prepare(f"{by_user} LIMIT ?")
        self._by_user_after = prepare(f"{by_user} AND id < ? LIMIT ?")
        self._hours = prepare(
            f"SELECT hour, shard FROM {ks}.recognition_hours WHERE day = ? AND hour >= ? AND hour <= ?"
        )
        self._by_hour = prepare(
            f"SELECT {columns} FROM {ks}.recognitions_by_hour "
            "WHERE hour = ? AND shard = ? AND id >= ? AND id < ? LIMIT ?"
        )

    async def by_user(
        self, execute: Execute, query: UserQuery, cursor: Cursor | None, size: int
    ) -> tuple[Rows, Cursor | None]:
        newest = cursor.bucket if cursor is not None else date.max
        listed = await execute(self._user_days, [query.user, newest, self.DAYS_PER_READ])
        days = [as_date(row["day"]) for row in listed]
        # Cut short: the page may go on past the last day read (only if many days are empty).
        more = days[-1] - timedelta(days=1) if len(days) == self.DAYS_PER_READ else None

        async def fetch(day: date, after: uuid.UUID | None, limit: int) -> Rows:
            if after is None:
                return await execute(self._by_user, [query.user, day, limit])
            return await execute(self._by_user_after, [query.user, day, after, limit])

        return await page_through(days, cursor, size, fetch, self.USER_WAVE, more)

    async def by_window(
        self, execute: Execute, query: WindowQuery, cursor: Cursor | None, size: int
    ) -> tuple[Rows, Cursor | None]:
        if query.until <= query.since:
            return [], None
        last = query.until - timedelta(milliseconds=1)  # until is exclusive
        lowest, newest = min_uuid_from_time(query.since.timestamp()), min_uuid_from_time(query.until.timestamp())
        days = days_back(day_of(last), day_of(query.since))

        async def fetch_day(day: date, after: uuid.UUID | None, limit: int) -> Rows:
            start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            low = max(start, hour_of(query.since))
            high = min(start + timedelta(hours=23), hour_of(last))
            if after is not None:
                high = min(high, hour_of(id_time(after)))
            if high < low:
                return []
            index = await execute(self._hours, [day, low, high])
            hours, shards = hours_of_day([{**row, "hour": _utc(row["hour"])} for row in index])

            async def fetch_hour(hour: datetime, below: uuid.UUID | None, n: int) -> Rows:
                upper = below if below is not None else newest
                return await hour_rows(
                    shards[hour], n, lambda shard, k: execute(self._by_hour, [hour, shard, lowest, upper, k])
                )

            inner = Cursor(hour_of(id_time(after)), after) if after else None
            rows, _ = await page_through(hours, inner, limit, fetch_hour, self.HOUR_WAVE)
            return rows

        # Days one at a time: each is already up to HOUR_WAVE x SHARDS queries at once.
        return await page_through(days, cursor, size, fetch_day, 1)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # the driver's are naive UTC

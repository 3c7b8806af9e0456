"""The listing's merge and paging logic, on in-memory partitions (the real queries are in the
integration tests): every record once, newest first in Cassandra's timeuuid order, whatever the
page size, the spread over buckets and shards, and ids that share a millisecond."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cassandra.util import uuid_from_time

from services.recorder.listing import hour_rows, page_through, timeuuid_key

BASE = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _ids(rng: random.Random, count: int, spread_ms: int) -> list[uuid.UUID]:
    """Version 1 ids over ``spread_ms`` milliseconds: many share one, with any low bytes."""
    return [
        uuid_from_time(BASE + timedelta(milliseconds=rng.randrange(spread_ms)),
                       node=rng.getrandbits(48), clock_seq=rng.getrandbits(14))
        for _ in range(count)
    ]  # fmt: skip


def _below(rows: list[uuid.UUID], after: uuid.UUID | None, limit: int) -> list[dict]:
    """What a partition answers to ``id < after ... LIMIT limit`` (newest first)."""
    ordered = sorted(rows, key=timeuuid_key, reverse=True)
    if after is not None:
        ordered = [i for i in ordered if timeuuid_key(i) < timeuuid_key(after)]
    return [{"id": i} for i in ordered[:limit]]


def test_timeuuid_key_orders_by_time_then_signed_low_bytes():
    # Same millisecond, clock sequence equal, nodes 0x7f... and 0x80...: as signed bytes 127 >
    # -128, so Cassandra puts the first after the second; Python's UUID order (the integer) is
    # the other way round. The integration tests check this order against a real node.
    first = uuid_from_time(BASE, node=0x7F0000000000, clock_seq=5)
    second = uuid_from_time(BASE, node=0x800000000000, clock_seq=5)
    assert timeuuid_key(first) > timeuuid_key(second) and first < second
    later = uuid_from_time(BASE + timedelta(milliseconds=1), node=0, clock_seq=0)
    assert timeuuid_key(later) > max(timeuuid_key(first), timeuuid_key(second))


@pytest.mark.parametrize("seed", range(40))
def test_hour_rows_is_the_newest_of_the_union_of_its_shards(seed):
    rng = random.Random(seed)
    shards = {s: _ids(rng, rng.choice([0, 1, 3, 40]), spread_ms=rng.choice([1, 5, 3_600_000])) for s in range(32)}
    listed = [s for s, rows in shards.items() if rows]
    everything = [i for rows in shards.values() for i in rows]
    calls: list[int] = []

    async def fetch(shard: int, n: int) -> list[dict]:
        calls.append(n)
        return _below(shards[shard], None, n)

    for limit in (1, 2, 21, 51, 1001):
        calls.clear()
        got = asyncio.run(hour_rows(listed, limit, fetch))
        assert [r["id"] for r in got] == [r["id"] for r in _below(everything, None, limit)]
        assert len(calls) <= 2 * len(listed)  # two rounds at most


@pytest.mark.parametrize("seed", range(30))
def test_paging_through_buckets_returns_each_record_once_newest_first(seed):
    rng = random.Random(1000 + seed)
    # Buckets are days counted down; some empty, some dense, ids sharing milliseconds.
    buckets = list(range(20, 0, -1))
    data = {b: [] for b in buckets}
    for b in buckets:
        for i in _ids(rng, rng.choice([0, 0, 1, 2, 7, 30]), spread_ms=rng.choice([1, 50])):
            data[b].append(uuid_from_time(BASE + timedelta(days=b, milliseconds=i.time % 50), node=i.node,
                                          clock_seq=i.clock_seq))  # fmt: skip
    expected = [r["id"] for b in buckets for r in _below(data[b], None, 10_000)]

    async def fetch(bucket: int, after: uuid.UUID | None, limit: int) -> list[dict]:
        return _below(data[bucket], after, limit)

    for size in (1, 2, 5, 13, 500):
        for wave in (1, 8):
            listed, cursor, pages = [], None, []
            while True:
                rows, cursor = asyncio.run(page_through(buckets, cursor, size, fetch, wave))
                listed += [r["id"] for r in rows]
                pages.append(len(rows))
                if cursor is None:
                    break
            assert listed == expected, (size, wave)
            # Every page full but the last; a last page is empty only when the one before ended
            # exactly at a bucket's end with only empty buckets after it (never known in advance).
            assert all(n == size for n in pages[:-1]) and pages[-1] <= size
            assert len(pages) <= max(1, -(-len(expected) // size)) + 1


def test_a_cut_short_bucket_list_continues_where_it_was_cut():
    async def fetch(bucket: int, after, limit: int) -> list[dict]:  # type: ignore[no-untyped-def]
        return []

    rows, cursor = asyncio.run(page_through([5, 4], None, 10, fetch, 8, more=3))
    assert rows == [] and cursor is not None and cursor.bucket == 3 and cursor.after is None

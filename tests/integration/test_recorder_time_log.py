"""The bucketed listings against the session's real Cassandra node: the time log's (hour, shard)
partitions merged back into one newest-first order, user histories in day partitions, and page
tokens of the previous (month bucket) version."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from cassandra.util import uuid_from_time

from digits.v1 import recorder_pb2
from services.recorder import paging, schema
from services.recorder.config import Config
from services.recorder.listing import timeuuid_key
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN
from tests.recording import admin_stub, record_request, timestamp

KEYSPACE = "digits_time_log"
TOKEN_KEY = "time-log-test-page-token-key"


@pytest.fixture(scope="module")
def stub(cassandra):
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,), keyspace=KEYSPACE,
        replication_factor=1, page_token_key=TOKEN_KEY, admin_token=TEST_ADMIN_TOKEN, max_page_size=1000,
    )  # fmt: skip
    with admin_stub(config) as stub:
        yield stub


def listing(stub, page_size: int, **query) -> tuple[list[recorder_pb2.Recognition], list[int]]:  # type: ignore[no-untyped-def]
    """Every record of a listing, following the tokens, and the size of each page."""
    found, sizes, token = [], [], ""
    while True:
        reply = stub.ListRecognitions(
            recorder_pb2.ListRecognitionsRequest(page_size=page_size, page_token=token, **query), timeout=30
        )
        found += reply.recognitions
        sizes.append(len(reply.recognitions))
        token = reply.next_page_token
        if not token:
            return found, sizes
        assert len(sizes) < 2000, "paging does not end"


def quiet_hour() -> datetime:
    """The start of an hour in the past that no other test writes to."""
    return datetime(2019, 1, 1, tzinfo=timezone.utc) + timedelta(hours=random.SystemRandom().randrange(40_000))


def unwritten_hour() -> datetime:
    """The start of an hour at least 32 days before any this module writes to (they all write from
    2019 on): a long window from it is empty, where one from a quiet_hour() may meet another
    test's records (a 31-day window did, about once in 25 runs)."""
    return datetime(2010, 1, 1, tzinfo=timezone.utc) + timedelta(hours=random.SystemRandom().randrange(75_000))


def newest_first(records) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.id for r in sorted(records, key=lambda r: timeuuid_key(uuid.UUID(r.id)), reverse=True)]


def _count(cql, metric: str, table: str) -> int:  # type: ignore[no-untyped-def]
    """How many reads or writes (``metric``) of ``table`` the (only) node has served."""
    row = cql.execute(
        f"SELECT count FROM system_views.{metric} WHERE keyspace_name = %s AND table_name = %s", [KEYSPACE, table]
    ).one()
    return row.count if row else 0


def test_cassandra_orders_timeuuids_as_the_merge_does(cassandra, cql):
    """The merge of shards sorts by timeuuid_key; a partition sorts by Cassandra's timeuuid
    comparison. They must agree, for ids in one millisecond above all (Python's UUID order
    does not)."""
    cql.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE}_order WITH replication = "
                "{'class': 'SimpleStrategy', 'replication_factor': 1}")  # fmt: skip
    table = f"{KEYSPACE}_order.ids"
    cql.execute(f"CREATE TABLE IF NOT EXISTS {table} (p int, id timeuuid, PRIMARY KEY (p, id)) "
                "WITH CLUSTERING ORDER BY (id DESC)")  # fmt: skip
    rng = random.Random(7)
    moment = datetime(2026, 5, 1, tzinfo=timezone.utc)
    ids = [
        uuid_from_time(moment + timedelta(milliseconds=rng.randrange(3)), node=rng.getrandbits(48),
                       clock_seq=rng.getrandbits(14))
        for _ in range(300)
    ]  # fmt: skip
    insert = cql.prepare(f"INSERT INTO {table} (p, id) VALUES (1, ?)")
    for i in ids:
        cql.execute(insert, [i])
    stored = [r.id for r in cql.execute(f"SELECT id FROM {table} WHERE p = 1")]
    assert stored == sorted(ids, key=timeuuid_key, reverse=True)
    assert stored != sorted(ids, reverse=True)  # the driver's UUID order is another order
    pivot = stored[150]
    below = [r.id for r in cql.execute(f"SELECT id FROM {table} WHERE p = 1 AND id < %s", [pivot])]
    assert below == [i for i in stored if timeuuid_key(i) < timeuuid_key(pivot)]


def test_a_busy_hour_is_merged_from_its_shards_newest_first(stub, cql):
    hour = quiet_hour()
    # 240 records: most in one millisecond (ids then differ only in their hashed low bytes),
    # the rest across the hour; they fall in nearly every shard.
    moments = [hour + timedelta(minutes=30)] * 160 + [hour + timedelta(seconds=s * 40) for s in range(80)]
    index_writes = _count(cql, "local_write_latency", "recognition_hours")
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda m: stub.Record(record_request(m, user=""), timeout=30), moments))
    shards = {schema.shard_of(uuid.UUID(s.id)) for s in stored}
    assert len(shards) >= 28
    # The recorder indexes an (hour, shard) with its first records, not with every record.
    index_writes = _count(cql, "local_write_latency", "recognition_hours") - index_writes
    assert len(shards) <= index_writes < len(stored) // 2
    listed_shards = cql.execute(
        f"SELECT shard FROM {KEYSPACE}.recognition_hours WHERE day = %s AND hour = %s", [hour.date(), hour]
    ).all()
    assert {r.shard for r in listed_shards} == shards  # the index lists exactly the shards written
    window = recorder_pb2.TimeWindow(since=timestamp(hour), until=timestamp(hour + timedelta(hours=1)))
    expected = newest_first(stored)
    for size in (1, 7, 50, 239, 240, 1000):
        found, sizes = listing(stub, size, window=window)
        assert [r.id for r in found] == expected, f"page size {size}"
        assert all(n == size for n in sizes[:-1])


def test_a_window_spans_hours_and_days_within_its_bounds(stub):
    start = quiet_hour()
    offsets = [timedelta(minutes=m) for m in (0, 10, 59, 61, 60 * 5, 60 * 26 + 1, 60 * 26 + 2, 60 * 49)]
    stored = [stub.Record(record_request(start + off, user="", digit=i), timeout=10) for i, off in enumerate(offsets)]
    # since mid-hour (inclusive), until mid-hour (exclusive): the edges fall inside partitions.
    since, until = start + timedelta(minutes=10), start + timedelta(minutes=60 * 26 + 2)
    window = recorder_pb2.TimeWindow(since=timestamp(since), until=timestamp(until))
    for size in (1, 2, 3, 100):
        found, _ = listing(stub, size, window=window)
        assert [r.digit for r in found] == [5, 4, 3, 2, 1], f"page size {size}"
    # A record deleted leaves its (hour, shard) in the index: an empty read, nothing else.
    stub.DeleteRecognition(recorder_pb2.DeleteRecognitionRequest(id=stored[4].id), timeout=10)
    found, _ = listing(stub, 2, window=window)
    assert [r.digit for r in found] == [5, 3, 2, 1]


def test_a_long_empty_window_costs_one_index_read_a_day(stub, cql):
    since = unwritten_hour() + timedelta(minutes=30)  # never midnight: the window touches 32 days
    window = recorder_pb2.TimeWindow(since=timestamp(since), until=timestamp(since + timedelta(days=31)))
    before = [_count(cql, "local_read_latency", t) for t in ("recognition_hours", "recognitions_by_hour")]
    reply = stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(window=window), timeout=10)
    assert list(reply.recognitions) == [] and reply.next_page_token == ""
    after = [_count(cql, "local_read_latency", t) for t in ("recognition_hours", "recognitions_by_hour")]
    # 32 days (31 and a part), one index read each; not 744 hours x 32 shards.
    assert (after[0] - before[0], after[1] - before[1]) == (32, 0)


def test_a_users_history_in_day_partitions_and_old_month_tokens(stub, cql):
    user = f"days-{uuid.uuid4().hex[:8]}"
    month = datetime(2025, 3, 1, tzinfo=timezone.utc)
    moments = [month + timedelta(days=d, hours=h) for d in (1, 1, 2, 9, 9, 9, 20, 30) for h in (d % 5,)]
    moments += [month + timedelta(days=35)]  # April
    stored = [stub.Record(record_request(m + timedelta(seconds=i), user=user), timeout=10) for i, m in enumerate(moments)]
    days = [r.day for r in cql.execute(f"SELECT day FROM {KEYSPACE}.user_days WHERE user = %s", [user])]
    assert [str(d) for d in days] == ["2025-04-05", "2025-03-31", "2025-03-21", "2025-03-10", "2025-03-03", "2025-03-02"]
    expected = newest_first(stored)
    for size in (1, 2, 4, 50):
        found, _ = listing(stub, size, user=user)
        assert [r.id for r in found] == expected, f"page size {size}"
    # A token of the month-bucket version, stopped after the 3rd record (in March): the listing
    # resumes right after it.
    third = uuid.UUID(expected[2])
    body = paging._b64(f'{{"b":"2025-03-01","a":"{third}","u":"{user}"}}'.encode())
    old = f"{body}.{paging._b64(paging._signature(TOKEN_KEY.encode(), body))}"
    rest, token = [], old
    while token:
        reply = stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user, page_size=2, page_token=token), timeout=10)
        rest += [r.id for r in reply.recognitions]
        token = reply.next_page_token
    assert rest == expected[3:]

"""A deployment of the previous version (day and month partitions) migrated in place: rows
written in the old layout with plain CQL, `migrate` run as the Job runs it, then everything
listed through a recorder. Real Cassandra (the session's node), real gRPC."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from digits.v1 import recorder_pb2
from services.recorder import legacy, migrate, schema
from services.recorder.config import Config
from services.recorder.ids import record_id
from services.recorder.listing import timeuuid_key
from services.recorder.rows import write_timestamp
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN
from tests.recording import admin_stub, SEVEN, timestamp

KEYSPACE = f"digits_legacy_{uuid.uuid4().hex[:8]}"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
# The previous version's tables, as it created them (probabilities in the old non-frozen list).
OLD_SCHEMA = [
    f"CREATE KEYSPACE {KEYSPACE} WITH replication = {{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}}",
    *(
        f"CREATE TABLE {KEYSPACE}.{name} (id timeuuid, request_id uuid, digit int, confidence float, "
        f"probabilities list<float>, model_version text, user text, content_type text, filename text, "
        f"image_size bigint, client_address text, received_at timestamp{extra}) {order}"
        for name, extra, order in (
            ("recognitions", ", PRIMARY KEY (id)", ""),
            ("recognitions_by_day", ", day date, PRIMARY KEY (day, id)", "WITH CLUSTERING ORDER BY (id DESC)"),
            ("recognitions_by_user", ", month date, PRIMARY KEY ((user, month), id)", "WITH CLUSTERING ORDER BY (id DESC)"),
        )
    ),
    f"CREATE TABLE {KEYSPACE}.user_months (user text, month date, PRIMARY KEY (user, month)) "
    "WITH CLUSTERING ORDER BY (month DESC)",
    f"CREATE TABLE {KEYSPACE}.images (id timeuuid, chunk int, data blob, PRIMARY KEY (id, chunk))",
]  # fmt: skip
COLUMNS = "id, request_id, digit, confidence, probabilities, model_version, user, content_type, filename, image_size, received_at"


def _old_write(cql, received_at: datetime, user: str, digit: int, address_ttl: int = 0) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """One record as the previous version wrote it: the same rows, at its receipt time."""
    rid = record_id(received_at, uuid.uuid4())
    stamp = write_timestamp(received_at)
    values = [rid, uuid.uuid4(), digit, 0.9, [0.01] * 9 + [0.91], "old", user, "image/png", "seven.png", len(SEVEN), received_at]
    marks = ", ".join(["%s"] * len(values))
    day, month = received_at.date(), received_at.date().replace(day=1)
    rows = [("recognitions", "", [], "id = %s", [rid]),
            ("recognitions_by_day", "day, ", [day], "day = %s AND id = %s", [day, rid])]
    if user:
        rows.append(("recognitions_by_user", "month, ", [month], "user = %s AND month = %s AND id = %s", [user, month, rid]))
        cql.execute(f"INSERT INTO {KEYSPACE}.user_months (user, month) VALUES (%s, %s) USING TIMESTAMP %s", [user, month, stamp])
    cql.execute(f"INSERT INTO {KEYSPACE}.images (id, chunk, data) VALUES (%s, 0, %s) USING TIMESTAMP %s", [rid, SEVEN, stamp])
    for table, bucket, bucket_value, where, where_values in rows:
        bucket_mark = "%s, " if bucket else ""
        cql.execute(f"INSERT INTO {KEYSPACE}.{table} ({bucket}{COLUMNS}) VALUES ({bucket_mark}{marks}) USING TIMESTAMP %s",
                    [*bucket_value, *values, stamp])  # fmt: skip
        cql.execute(f"UPDATE {KEYSPACE}.{table} USING TTL %s AND TIMESTAMP %s SET client_address = %s WHERE {where}",
                    [address_ttl, stamp, "10.0.0.7", *where_values])  # fmt: skip
    return rid


@pytest.fixture(scope="module")
def old_deployment(cassandra, cql):
    for statement in OLD_SCHEMA:
        cql.execute(statement)
    records = {
        "ada-now": _old_write(cql, NOW - timedelta(hours=2), "ada", 1, address_ttl=3600),
        "anon-yesterday": _old_write(cql, NOW - timedelta(days=1), "", 2),
        "ada-last-month": _old_write(cql, NOW - timedelta(days=20), "ada", 3),
        "bob-same-ms": _old_write(cql, NOW - timedelta(hours=2), "bob", 4),
        "anon-same-ms": _old_write(cql, NOW - timedelta(hours=2), "", 5),
    }
    deleted = _old_write(cql, NOW - timedelta(hours=3), "ada", 6)
    later = write_timestamp(NOW)
    for table, where, values in (
        ("recognitions", "id = %s", [deleted]), ("recognitions_by_day", "day = %s AND id = %s", [(NOW - timedelta(hours=3)).date(), deleted]),
        ("recognitions_by_user", "user = %s AND month = %s AND id = %s", ["ada", (NOW - timedelta(hours=3)).date().replace(day=1), deleted]),
    ):  # fmt: skip
        cql.execute(f"DELETE FROM {KEYSPACE}.{table} USING TIMESTAMP %s WHERE {where}", [later, *values])
    # Enough rows for the scan to take several pages (legacy.PAGE_ROWS a page).
    bulk = cql.prepare(f"INSERT INTO {KEYSPACE}.recognitions_by_day (day, {COLUMNS}) VALUES (?, {', '.join('?' * 11)}) "
                       "USING TIMESTAMP ?")  # fmt: skip
    old_day = NOW - timedelta(days=5)
    moments = [old_day + timedelta(seconds=i) for i in range(legacy.PAGE_ROWS * 2 + 37)]
    execute_concurrent_with_args(cql, bulk, [
        (m.date(), record_id(m, uuid.uuid4()), uuid.uuid4(), 0, 0.5, None, "old", "", "image/png", "x.png", 1, m,
         write_timestamp(m)) for m in moments
    ], concurrency=64, raise_on_first_error=True)  # fmt: skip
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,), keyspace=KEYSPACE,
        replication_factor=1, admin_token=TEST_ADMIN_TOKEN, create_schema=False, migrate_wait_seconds=60,
    )  # fmt: skip
    yield config, records, len(moments)
    cql.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


@pytest.fixture(scope="module")
def stub(old_deployment):
    config, _, _ = old_deployment
    migrate.migrate(config)  # what the Job runs
    with admin_stub(config) as stub:
        yield stub


def _window(stub, since: datetime, until: datetime, size: int = 100) -> list[recorder_pb2.Recognition]:  # type: ignore[no-untyped-def]
    found, token = [], ""
    while True:
        window = recorder_pb2.TimeWindow(since=timestamp(since), until=timestamp(until))
        reply = stub.ListRecognitions(
            recorder_pb2.ListRecognitionsRequest(window=window, page_size=size, page_token=token), timeout=30
        )
        found += reply.recognitions
        token = reply.next_page_token
        if not token:
            return found


def test_the_old_records_are_listed_from_the_new_tables(stub, old_deployment, cql):
    config, records, bulk = old_deployment
    assert cql.execute(f"SELECT copied FROM {KEYSPACE}.data_migrations WHERE name = %s", [legacy.NAME]).one().copied == bulk + 5
    listed = _window(stub, NOW - timedelta(days=2), NOW, size=3)
    expected = sorted((records[k] for k in ("ada-now", "bob-same-ms", "anon-same-ms", "anon-yesterday")), key=timeuuid_key,
                      reverse=True)  # fmt: skip
    assert [uuid.UUID(r.id) for r in listed] == expected  # the one deleted before the copy stays deleted
    assert all(r.probabilities[9] == pytest.approx(0.91) and r.client_address == "10.0.0.7" for r in listed)
    history = stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user="ada", page_size=1), timeout=10)
    rest = stub.ListRecognitions(
        recorder_pb2.ListRecognitionsRequest(user="ada", page_token=history.next_page_token), timeout=10
    )
    assert [uuid.UUID(r.id) for r in [*history.recognitions, *rest.recognitions]] == [records["ada-now"], records["ada-last-month"]]
    assert len(_window(stub, NOW - timedelta(days=6), NOW - timedelta(days=4))) == bulk


def test_the_copy_keeps_write_timestamps_and_the_address_retention(stub, old_deployment, cql):
    _, records, _ = old_deployment
    rid = records["ada-now"]
    received = NOW - timedelta(hours=2)
    hour = received.replace(minute=0, second=0)
    row = cql.execute(
        f"SELECT WRITETIME(digit) AS written, TTL(client_address) AS ttl, scores FROM {KEYSPACE}.recognitions_by_hour "
        "WHERE hour = %s AND shard = %s AND id = %s", [hour, schema.shard_of(rid), rid],
    ).one()  # fmt: skip
    assert row.written == write_timestamp(received)  # the record writer's timestamp: deletions stay final
    assert 3000 < row.ttl <= 3600  # what was left of it, not a new retention period
    assert row.scores == pytest.approx([0.01] * 9 + [0.91])
    by_user = cql.execute(
        f"SELECT WRITETIME(digit) AS written FROM {KEYSPACE}.recognitions_by_user_day WHERE user = 'ada' AND day = %s AND id = %s",
        [received.date(), rid],
    ).one()  # fmt: skip
    assert by_user.written == write_timestamp(received)


def test_the_copy_runs_once_and_again_only_when_asked_idempotently(stub, old_deployment, cql):
    config, records, bulk = old_deployment
    migrate.migrate(config)  # a second Job: the copy is done, nothing is copied
    before = _window(stub, NOW - timedelta(days=30), NOW)
    migrate.migrate(config, copy_again=True)  # everything rewritten, identical cells
    after = _window(stub, NOW - timedelta(days=30), NOW)
    assert [r.id for r in after] == [r.id for r in before] and len(after) == bulk + 5
    assert [list(r.probabilities) for r in after] == [list(r.probabilities) for r in before]  # not doubled


def test_deleting_a_copied_record_removes_its_old_rows_too_for_good(stub, old_deployment, cql):
    config, records, _ = old_deployment
    rid = records["ada-last-month"]
    stub.DeleteRecognition(recorder_pb2.DeleteRecognitionRequest(id=str(rid)), timeout=10)
    received = NOW - timedelta(days=20)
    for table, where, values in (
        ("recognitions_by_day", "day = %s AND id = %s", [received.date(), rid]),
        ("recognitions_by_user", "user = 'ada' AND month = %s AND id = %s", [received.date().replace(day=1), rid]),
        ("recognitions_by_user_day", "user = 'ada' AND day = %s AND id = %s", [received.date(), rid]),
        ("recognitions_by_hour", "hour = %s AND shard = %s AND id = %s",
         [received.replace(minute=0, second=0), schema.shard_of(rid), rid]),
        ("recognitions", "id = %s", [rid]),
    ):  # fmt: skip
        assert not cql.execute(f"SELECT id FROM {KEYSPACE}.{table} WHERE {where}", values).one(), table
    migrate.migrate(config, copy_again=True)
    assert str(rid) not in {r.id for r in _window(stub, NOW - timedelta(days=30), NOW)}

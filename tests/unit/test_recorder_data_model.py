"""Pure functions of the recorder's data model: record ids, page tokens, buckets, schema, config."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from digits.config import ConfigError
from services.recorder import paging, schema
from services.recorder.config import Config
from services.recorder.ids import id_time, record_id, to_millis

KEY = b"unit-test-page-token-key"


def _signed(payload: str, key: bytes = KEY) -> str:
    """A token whose signature is right, whatever its body: to test the body's validation."""
    body = paging._b64(payload.encode())
    return f"{body}.{paging._b64(paging._signature(key, body))}"


def test_record_id_is_deterministic_time_based_and_distinct_per_request():
    moment = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    request = uuid.uuid4()
    first = record_id(moment, request)
    assert first == record_id(moment, request)
    assert first.version == 1
    assert id_time(first) == to_millis(moment) == moment.replace(microsecond=123000)
    others = {record_id(moment, uuid.uuid4()) for _ in range(1000)}
    assert first not in others and len(others) == 1000


def test_record_ids_sort_by_time():
    request = uuid.uuid4()
    early = record_id(datetime(2026, 1, 1, tzinfo=timezone.utc), request)
    late = record_id(datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc), request)
    assert early.time < late.time


def test_to_millis_converts_to_utc():
    plus_two = timezone(timedelta(hours=2))
    assert to_millis(datetime(2026, 1, 1, 2, 0, tzinfo=plus_two)) == datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "query",
    [
        paging.UserQuery("ada lovelace ✓"),
        paging.WindowQuery(
            datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
        ),
    ],
)
def test_page_tokens_round_trip(query):
    cursor = paging.Cursor(date(2026, 1, 1), uuid.uuid1())
    assert paging.decode(paging.encode(query, cursor, KEY), KEY) == (query, cursor)
    assert paging.decode(paging.encode(query, paging.Cursor(date(2025, 12, 1)), KEY), KEY) == (
        query,
        paging.Cursor(date(2025, 12, 1)),
    )


@pytest.mark.parametrize("token", ["", "!!!", "bnVsbA", "e30", "e30.", "e30.!!!", "a" * 600])
def test_unsigned_or_garbled_page_tokens_are_refused(token):
    with pytest.raises(paging.BadToken):
        paging.decode(token, KEY)


@pytest.mark.parametrize(
    "body", ["null", "{}", '{"b":"2026-01-01"}', '{"b":"x","u":"a"}', '{"b":"2026-01-01","s":"0","e":1}',
             '{"b":"2026-01-01","u":"a","a":"not-a-uuid"}', '{"b":"2026-01-01","s":1e300,"e":1}', "[1]"],
)  # fmt: skip
def test_signed_but_malformed_page_tokens_are_refused(body):
    with pytest.raises(paging.BadToken, match="malformed"):
        paging.decode(_signed(body), KEY)


def test_user_tokens_of_the_month_bucket_version_resume_at_the_right_day():
    """Tokens issued before histories moved to day buckets hold a month in "b"; still accepted."""
    after = record_id(datetime(2026, 3, 17, 23, 30, tzinfo=timezone.utc), uuid.uuid4())
    old = _signed(f'{{"b":"2026-03-01","a":"{after}","u":"ada"}}')
    assert paging.decode(old, KEY) == (paging.UserQuery("ada"), paging.Cursor(date(2026, 3, 17), after))
    # A page that ended exactly at a month's end: the next starts at that month's last day.
    assert paging.decode(_signed('{"b":"2026-02-01","u":"ada"}'), KEY)[1] == paging.Cursor(date(2026, 2, 28))
    # Window tokens were and are (day, last id): unchanged.
    window = _signed(f'{{"b":"2026-03-17","a":"{after}","s":0,"e":1}}')
    assert paging.decode(window, KEY)[1] == paging.Cursor(date(2026, 3, 17), after)


def test_a_token_cannot_be_forged_or_altered():
    token = paging.encode(paging.UserQuery("ada"), paging.Cursor(date(2026, 1, 1)), KEY)
    with pytest.raises(paging.BadToken, match="not one this service issued"):
        paging.decode(token, b"another key")
    payload, signature = token.split(".")
    altered = paging._b64(paging._unb64(payload).replace(b'"ada"', b'"bob"'))
    with pytest.raises(paging.BadToken, match="not one this service issued"):
        paging.decode(f"{altered}.{signature}", KEY)
    assert paging.decode(_signed('{"d":"2026-01-01","u":"bob"}'), KEY)[0] == paging.UserQuery("bob")


def test_days_back_lists_newest_first_inclusive():
    assert paging.days_back(date(2026, 3, 1), date(2026, 2, 27)) == [
        date(2026, 3, 1), date(2026, 2, 28), date(2026, 2, 27)
    ]  # fmt: skip
    assert paging.month_of(datetime(2026, 3, 31, 23, 59, tzinfo=timezone.utc)) == date(2026, 3, 1)


def test_schema_validates_identifiers_and_replication():
    with pytest.raises(ValueError):
        schema.statements("bad-name; DROP", {"dc1": 3})
    with pytest.raises(ValueError):
        schema.statements("digits", {"dc1'": 3})
    with pytest.raises(ValueError):
        schema.statements("digits", {"dc1": 0})
    first = schema.statements("digits", {"dc1": 3, "dc2": 2})[0]
    assert "'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2" in first


def test_every_listing_table_is_bucketed_and_sorted_newest_first():
    cql = "\n".join(schema.statements("digits", {"dc1": 3}))
    assert "PRIMARY KEY ((hour, shard), id)\n) WITH CLUSTERING ORDER BY (id DESC)" in cql
    assert "PRIMARY KEY ((user, day), id)\n) WITH CLUSTERING ORDER BY (id DESC)" in cql
    assert "PRIMARY KEY (day, hour, shard)\n) WITH CLUSTERING ORDER BY (hour DESC, shard ASC)" in cql
    assert "PRIMARY KEY (user, day)\n) WITH CLUSTERING ORDER BY (day DESC)" in cql
    assert "image blob" not in cql  # the image lives in its own table, once
    # The legacy tables stay (copied from once, deleted from), unchanged.
    assert "PRIMARY KEY (day, id)\n) WITH CLUSTERING ORDER BY (id DESC)" in cql
    assert "PRIMARY KEY ((user, month), id)\n) WITH CLUSTERING ORDER BY (id DESC)" in cql


def test_shards_are_a_stable_even_hash_of_the_id():
    ids = [record_id(datetime(2026, 5, 1, tzinfo=timezone.utc), uuid.uuid4()) for _ in range(32_000)]
    counts = [0] * schema.SHARDS
    for i in ids:
        counts[schema.shard_of(i)] += 1
    # 1,000 expected per shard; 6 standard deviations (~190) either way.
    assert min(counts) > 800 and max(counts) < 1200, counts
    # Fixed for data already written: these values must never change.
    assert schema.SHARDS == 32
    assert schema.shard_of(uuid.UUID("41a73c62-e798-11f1-84fb-72c6b730501f")) == 18


def test_hour_buckets_are_utc_hour_starts():
    plus_two = timezone(timedelta(hours=2))
    assert paging.hour_of(datetime(2026, 1, 1, 1, 59, 59, 999000, tzinfo=plus_two)) == datetime(
        2025, 12, 31, 23, tzinfo=timezone.utc
    )
    assert paging.last_day_of_month(date(2024, 2, 1)) == date(2024, 2, 29)
    assert paging.last_day_of_month(date(2026, 12, 1)) == date(2026, 12, 31)


def test_replication_and_consistency_come_from_the_environment(monkeypatch):
    for name in ("RECORDER_REPLICATION", "RECORDER_REPLICATION_FACTOR", "RECORDER_WRITE_CONSISTENCY"):
        monkeypatch.delenv(name, raising=False)
    assert Config.from_env().datacenters() == {"datacenter1": 3}
    monkeypatch.setenv("RECORDER_REPLICATION", "dc1:3, dc2:5")
    monkeypatch.setenv("RECORDER_WRITE_CONSISTENCY", "each_quorum")
    config = Config.from_env()
    assert config.datacenters() == {"dc1": 3, "dc2": 5} and config.write_consistency == "each_quorum"
    monkeypatch.setenv("RECORDER_REPLICATION", "dc1")
    with pytest.raises(ConfigError):
        Config.from_env()
    monkeypatch.setenv("RECORDER_REPLICATION", "dc1:3")
    monkeypatch.setenv("RECORDER_WRITE_CONSISTENCY", "MOSTLY")
    with pytest.raises(ConfigError):
        Config.from_env()

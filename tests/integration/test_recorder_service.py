"""The Recorder over real gRPC, against the real Cassandra node started for the session."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import grpc
from cassandra.cluster import NoHostAvailable
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder import schema
from services.recorder.config import Config
from services.recorder.server import build
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN, ServiceThread, free_port
from tests.recording import admin_stub, SEVEN, recognition, record_request, timestamp

KEYSPACE = "digits_it"
TOKEN_KEY = "integration-test-page-token-key"
MAX_IMAGE = 2_000_000


@pytest.fixture(scope="module")
def stub(cassandra):
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,),
        keyspace=KEYSPACE, replication_factor=1, max_image_bytes=MAX_IMAGE, page_token_key=TOKEN_KEY,
        admin_token=TEST_ADMIN_TOKEN,
    )  # fmt: skip
    with admin_stub(config) as stub:
        yield stub


def record(stub, received_at: datetime | None = None, **overrides) -> recorder_pb2.Recognition:
    return stub.Record(record_request(received_at, **overrides), timeout=10)


def unique_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def list_all(stub, page_size: int, **query) -> list[list[recorder_pb2.Recognition]]:
    """Every page of a listing, following next_page_token to the end."""
    pages, token = [], ""
    while True:
        reply = stub.ListRecognitions(
            recorder_pb2.ListRecognitionsRequest(page_size=page_size, page_token=token, **query), timeout=10
        )
        pages.append(list(reply.recognitions))
        token = reply.next_page_token
        if not token:
            return pages
        assert len(pages) < 100, "paging does not end"


def test_record_then_get_returns_the_same_recognition(stub):
    stored = record(stub)
    assert uuid.UUID(stored.id).version == 1  # time-based: sortable and unique per write
    assert stored.received_at.seconds > 0
    assert stored.image == b"" and stored.image_size == len(SEVEN)  # not echoed: the caller has it
    fetched = stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id, include_image=True), timeout=10)
    assert fetched.image == SEVEN
    assert fetched.digit == 7 and fetched.user == "ada" and fetched.filename == "seven.png"
    assert fetched.probabilities == pytest.approx(stored.probabilities)
    assert fetched.received_at == stored.received_at
    without_image = stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id), timeout=10)
    assert without_image.image == b"" and without_image.image_size == len(SEVEN)


def test_the_rows_are_in_cassandra(stub, cql):
    user = unique_user()
    stored = record(stub, user=user, digit=3, confidence=0.5)
    record_id = uuid.UUID(stored.id)
    row = cql.execute(
        f"SELECT digit, confidence, user, content_type, received_at FROM {KEYSPACE}.recognitions WHERE id = %s",
        [record_id],
    ).one()
    assert row is not None
    assert (row.digit, row.user, row.content_type) == (3, user, "image/png")
    assert row.confidence == pytest.approx(0.5)
    chunks = cql.execute(f"SELECT data FROM {KEYSPACE}.images WHERE id = %s", [record_id]).all()
    assert b"".join(c.data for c in chunks) == SEVEN
    # The denormalised rows exist too, in their buckets, and the indexes list the buckets.
    received = stored.received_at.ToDatetime()
    hour, shard = received.replace(minute=0, second=0, microsecond=0), schema.shard_of(record_id)
    by_user = cql.execute(
        f"SELECT id FROM {KEYSPACE}.recognitions_by_user_day WHERE user = %s AND day = %s", [user, received.date()]
    ).all()
    assert [r.id for r in by_user] == [record_id]
    assert [r.day for r in cql.execute(f"SELECT day FROM {KEYSPACE}.user_days WHERE user = %s", [user])] == [
        received.date()
    ]
    by_hour = cql.execute(
        f"SELECT digit FROM {KEYSPACE}.recognitions_by_hour WHERE hour = %s AND shard = %s AND id = %s",
        [hour, shard, record_id],
    ).one()
    assert by_hour is not None and by_hour.digit == 3
    assert cql.execute(
        f"SELECT shard FROM {KEYSPACE}.recognition_hours WHERE day = %s AND hour = %s AND shard = %s",
        [received.date(), hour, shard],
    ).one()
    # Not in the legacy tables any more.
    assert not cql.execute(
        f"SELECT id FROM {KEYSPACE}.recognitions_by_day WHERE day = %s AND id = %s", [received.date(), record_id]
    ).one()


def test_an_image_larger_than_a_chunk_comes_back_byte_for_byte(stub, cql):
    image = os.urandom(1_300_000)  # three 512 KiB chunks
    stored = record(stub, image=image, content_type="image/x-test", filename="big.bin")
    reply = stub.GetImage(recorder_pb2.GetImageRequest(id=stored.id), timeout=10)
    assert (reply.data, reply.content_type, reply.filename) == (image, "image/x-test", "big.bin")
    chunks = cql.execute(f"SELECT chunk FROM {KEYSPACE}.images WHERE id = %s", [uuid.UUID(stored.id)]).all()
    assert [c.chunk for c in chunks] == [0, 1, 2]
    assert stored.image_size == len(image)


def test_get_image_of_unknown_or_malformed_ids(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetImage(recorder_pb2.GetImageRequest(id=str(uuid.uuid1())), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetImage(recorder_pb2.GetImageRequest(id="nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_retried_request_returns_the_same_id_and_stores_one_record(stub, cql):
    user = unique_user()
    request = record_request(user=user)
    first = stub.Record(request, timeout=10)
    # A retry, and a burst of concurrent duplicates (a client retrying after its own timeout).
    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda _: stub.Record(request, timeout=10), range(8)))
    assert {r.id for r in again} == {first.id}
    assert all(r == first for r in again)
    listed = stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user), timeout=10)
    assert [r.id for r in listed.recognitions] == [first.id]
    # Every write of the record carries the same timestamp: the rewrites leave it exactly as it
    # was (a non-frozen list would have gained its elements again with each one).
    stored = stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=first.id), timeout=10)
    assert list(stored.probabilities) == pytest.approx(list(request.recognition.probabilities))
    assert list(listed.recognitions[0].probabilities) == pytest.approx(list(request.recognition.probabilities))
    day = first.received_at.ToDatetime().date()
    rows = cql.execute(
        f"SELECT id FROM {KEYSPACE}.recognitions_by_user_day WHERE user = %s AND day = %s", [user, day]
    ).all()
    assert len(rows) == 1
    # Another request (new request id) at the same millisecond is another record.
    other = recorder_pb2.RecordRequest(request_id=str(uuid.uuid4()), recognition=request.recognition)
    assert stub.Record(other, timeout=10).id != first.id


def test_concurrent_records_never_overwrite_each_other(stub, cql):
    # The seed keyed rows by timestamp, so two requests in the same millisecond lost one.
    same_moment = datetime.now(timezone.utc)
    with ThreadPoolExecutor(16) as pool:
        stored = list(pool.map(lambda i: record(stub, same_moment, user=f"concurrent-{i}"), range(64)))
    ids = {uuid.UUID(s.id) for s in stored}
    assert len(ids) == 64
    select = cql.prepare(f"SELECT user FROM {KEYSPACE}.recognitions WHERE id = ?")
    users = {cql.execute(select, [record_id]).one().user for record_id in ids}
    assert users == {f"concurrent-{i}" for i in range(64)}


def test_a_users_history_pages_newest_first_each_record_once(stub):
    user = unique_user()
    now = datetime.now(timezone.utc)
    # Spread over three months (three partitions), with two records in the same millisecond.
    moments = [now - timedelta(days=d, minutes=m) for d, m in ((0, 1), (0, 2), (0, 2), (0, 3), (35, 0), (70, 0), (70, 5))]
    with ThreadPoolExecutor(4) as pool:
        stored = list(pool.map(lambda m: record(stub, m, user=user), moments))
    expected = sorted(stored, key=lambda r: (r.received_at.ToDatetime(), uuid.UUID(r.id).bytes), reverse=True)
    for size in (1, 3, 7, 50):
        pages = list_all(stub, size, user=user)
        ids = [r.id for page in pages for r in page]
        assert sorted(ids) == sorted(r.id for r in stored), f"page size {size}: not each record exactly once"
        times = [r.received_at.ToDatetime() for page in pages for r in page]
        assert times == sorted(times, reverse=True), f"page size {size}: not newest first"
        assert [t for t in times] == [r.received_at.ToDatetime() for r in expected]
        assert all(len(page) <= size for page in pages)
        assert all(r.image == b"" and r.user == user for page in pages for r in page)


def test_a_time_window_pages_newest_first_within_its_bounds(stub):
    # A quiet stretch of the past, so other tests' records do not land in it.
    base = datetime(2021, 3, 1, 22, 0, tzinfo=timezone.utc) + timedelta(days=uuid.uuid4().int % 3000 / 10)
    base = base.replace(microsecond=0)
    offsets = [timedelta(hours=h) for h in (0, 1, 5, 26, 27, 49)]  # across three UTC days
    stored = [record(stub, base + off, user="", digit=i) for i, off in enumerate(offsets)]
    # since is inclusive, until exclusive: the first and last records are at the edges.
    window = recorder_pb2.TimeWindow(since=timestamp(base), until=timestamp(base + timedelta(hours=49)))
    pages = list_all(stub, 2, window=window)
    listed = [r for page in pages for r in page]
    assert [r.digit for r in listed] == [4, 3, 2, 1, 0]
    assert [r.id for r in listed] == [s.id for s in reversed(stored[:5])]
    assert all(r.user == "" for r in listed)  # anonymous records are in the time log
    empty = stub.ListRecognitions(
        recorder_pb2.ListRecognitionsRequest(
            window=recorder_pb2.TimeWindow(since=timestamp(base - timedelta(days=2)), until=timestamp(base))
        ),
        timeout=10,
    )
    assert list(empty.recognitions) == [] and empty.next_page_token == ""


def test_a_page_token_cannot_be_reused_for_another_query(stub):
    user = unique_user()
    for _ in range(3):
        record(stub, user=user)
    first = stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user, page_size=1), timeout=10)
    assert first.next_page_token
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListRecognitions(
            recorder_pb2.ListRecognitionsRequest(user="someone-else", page_token=first.next_page_token), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "another query" in caught.value.details()


def test_a_signed_token_for_a_window_past_the_limit_is_still_refused(stub):
    """Defence in depth: even a token signed with the service's key (a leaked key, or a limit
    lowered since it was issued) cannot open a walk over more than max_window_days."""
    from services.recorder import paging

    since = datetime(2016, 1, 1, tzinfo=timezone.utc)
    until = datetime(2026, 1, 1, tzinfo=timezone.utc)
    token = paging.encode(paging.WindowQuery(since, until), paging.Cursor(until.date()), TOKEN_KEY.encode())
    window = recorder_pb2.TimeWindow(since=timestamp(since), until=timestamp(until))
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(window=window, page_token=token), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "longer than 31 days" in caught.value.details()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"user": ""}, "1 to 128 characters"),
        ({"user": "u" * 200}, "1 to 128 characters"),
        ({"user": "ada", "page_size": 5000}, "page_size"),
        ({"user": "ada", "page_size": -1}, "page_size"),
        ({"user": "ada", "page_token": "not-a-token"}, "not one this service issued"),
        ({"user": "ada", "page_token": "x" * 600}, "too long"),
        ({"window": {"since": timestamp(datetime(2024, 2, 1)), "until": timestamp(datetime(2024, 1, 1))}}, "after"),
        ({"window": {"since": timestamp(datetime(2024, 1, 1)), "until": timestamp(datetime(2024, 6, 1))}}, "longer than"),
    ],
    ids=["empty-user", "long-user", "huge-page", "negative-page", "bad-token", "long-token", "reversed", "too-long"],
)
def test_invalid_list_requests_are_refused(stub, request_fields, message):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(**request_fields), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": b""}, "image is required"),
        ({"digit": 12}, "digit"),
        ({"confidence": 1.5}, "confidence"),
        ({"probabilities": [0.5, 0.5]}, "probabilities"),
        ({"user": "u" * 500}, "user"),
        ({"image": b"x" * (MAX_IMAGE + 1)}, "limit"),
    ],
    ids=["no-image", "digit", "confidence", "probabilities", "long-user", "huge-image"],
)
def test_invalid_records_are_refused(stub, overrides, message):
    with pytest.raises(grpc.RpcError) as caught:
        record(stub, **overrides)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def test_bad_request_id_or_received_at_is_refused(stub):
    cases = [
        recorder_pb2.RecordRequest(request_id="not-a-uuid", recognition=recognition(received_at=timestamp())),
        # Without received_at a retry could not find its record again.
        recorder_pb2.RecordRequest(request_id=str(uuid.uuid4()), recognition=recognition()),
        recorder_pb2.RecordRequest(
            request_id=str(uuid.uuid4()),
            recognition=recognition(received_at=timestamp(datetime.now(timezone.utc) + timedelta(hours=1))),
        ),
    ]
    for request in cases:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Record(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_request_without_request_id_gets_the_recorders_clock(stub):
    before = time.time()
    stored = stub.Record(recorder_pb2.RecordRequest(recognition=recognition()), timeout=10)
    assert before - 1 <= stored.received_at.ToDatetime(tzinfo=timezone.utc).timestamp() <= time.time() + 1


def test_unknown_and_malformed_ids(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=str(uuid.uuid1())), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id="'; DROP TABLE x; --"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_latency_and_errors_are_measured_by_operation_and_consistency(stub):
    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    writes = sample("digits_recorder_cassandra_seconds_count", operation="record", consistency="LOCAL_QUORUM")
    not_found = sample("digits_recorder_errors_total", operation="get", kind="not_found")
    record(stub)
    with pytest.raises(grpc.RpcError):
        stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=str(uuid.uuid1())), timeout=10)
    assert sample("digits_recorder_cassandra_seconds_count", operation="record", consistency="LOCAL_QUORUM") == writes + 1
    assert sample("digits_recorder_errors_total", operation="get", kind="not_found") == not_found + 1


def test_without_cassandra_it_is_not_serving_and_says_unavailable():
    # Nothing listens on this address: the recorder must report it, not hang or crash.
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=("127.0.0.99",), cassandra_port=free_port(),
    )  # fmt: skip
    service = ServiceThread(build(config)).start()
    try:
        with grpc.insecure_channel(service.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as caught:
                recorder_pb2_grpc.RecorderStub(channel).Record(
                    recorder_pb2.RecordRequest(recognition=recognition()), timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        service.stop()


def test_the_recorder_survives_a_cassandra_restart(stub, cassandra, cql):
    """Stop the only node, then restart it: the same recorder answers UNAVAILABLE promptly
    while it is down and stores records again once it is back, without being restarted.

    A clean stop, not kill -9: a single node killed within its commit log sync period
    (periodic, 10 s here) loses what it acknowledged in that period. Crashes are the 3-node
    cluster's business (tests/cluster), where the other replicas keep those writes.
    """
    before = record(stub, user="restart")
    cassandra.stop_node(0)
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            stub.Record(record_request(user="restart"), timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Cassandra" in caught.value.details()
        assert time.monotonic() - started < 3 + 2
    finally:
        cassandra.start_node(0)
    deadline = time.monotonic() + 60
    while True:
        try:
            after = record(stub, user="restart")
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            assert time.monotonic() < deadline, "the recorder did not recover after Cassandra came back"
            time.sleep(0.5)
    # Read back with the independent session, once its own reconnection attempt has come round
    # (the driver's default backoff is slower than the recorder's): later tests need it too.
    deadline = time.monotonic() + 90
    while True:
        try:
            rows = [
                cql.execute(f"SELECT user FROM {KEYSPACE}.recognitions WHERE id = %s", [uuid.UUID(s.id)]).one()
                for s in (before, after)
            ]
            break
        except NoHostAvailable:
            assert time.monotonic() < deadline, "the test's own driver session did not reconnect"
            time.sleep(1)
    assert [row and row.user for row in rows] == ["restart", "restart"]


def test_a_number_and_its_digits_are_stored_and_listed(stub):
    from digits.v1 import recognizer_pb2

    readings = [
        recognizer_pb2.DigitReading(digit=d, confidence=c, box=recognizer_pb2.BoundingBox(x=x, y=4, width=20, height=30))
        for d, c, x in ((4, 0.97, 3), (2, 0.88, 30))
    ]
    user = unique_user()
    stored = record(stub, digit=4, number="42", digits=readings, user=user)
    fetched = stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id), timeout=10)
    assert fetched.number == "42"
    assert [(d.digit, d.box.x, d.box.width) for d in fetched.digits] == [(4, 3, 20), (2, 30, 20)]
    assert [d.confidence for d in fetched.digits] == pytest.approx([0.97, 0.88])
    (listed,) = stub.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user), timeout=10).recognitions
    assert listed.number == "42" and len(listed.digits) == 2


@pytest.mark.parametrize(
    ("number", "digits", "message"),
    [("4x", [4, 0], "at most 12 digits"), ("4" * 13, [4] * 13, "at most 12 digits"), ("42", [4, 3], "digits of"),
     ("42", [4], "digits of")],
    ids=["not-digits", "too-long", "mismatch", "missing"],
)
def test_a_number_that_does_not_match_its_digits_is_refused(stub, number, digits, message):
    from digits.v1 import recognizer_pb2

    readings = [recognizer_pb2.DigitReading(digit=d, confidence=0.9) for d in digits]
    with pytest.raises(grpc.RpcError) as caught:
        record(stub, number=number, digits=readings)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()

"""RecordBatch over real gRPC against the session's real Cassandra node: every record of the
call is stored (rows, listings, image) and answered in order, a request Record would refuse
fails alone, retrying the call stores nothing twice, and the call's token applies to all."""

from __future__ import annotations

import uuid

import grpc
import pytest

from digits import errors
from digits.v1 import recognizer_pb2, recorder_pb2, recorder_pb2_grpc
from services.recorder.config import Config
from services.recorder.requests import MAX_CONTENT_TYPE, MAX_FILENAME, MAX_MODEL_VERSION, MAX_USER
from services.recorder.rows import BATCH_RECORDS, INLINE_IMAGE_BYTES
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN, with_token
from tests.recording import SEVEN, record_request, recorder_channel

KEYSPACE = "digits_batch"
MAX_RECORDS = 48


@pytest.fixture(scope="module")
def channel(cassandra):
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,), keyspace=KEYSPACE,
        replication_factor=1, admin_token=TEST_ADMIN_TOKEN, max_records_per_call=MAX_RECORDS,
    )  # fmt: skip
    with recorder_channel(config) as channel:
        yield channel


@pytest.fixture(scope="module")
def admin(channel):
    return recorder_pb2_grpc.RecorderStub(with_token(channel))


def _history(admin, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    reply = admin.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user, page_size=1000), timeout=10)
    return [r.id for r in reply.recognitions]


def test_every_record_is_stored_and_answered_in_order(admin):
    user = f"batch-{uuid.uuid4().hex[:8]}"
    large = SEVEN + bytes(INLINE_IMAGE_BYTES)  # past the inline size: its chunks are written first
    # More than one Cassandra batch's worth, so the records are split over several batches.
    requests = [record_request(user=user, digit=i % 10, image=large if i % 7 == 3 else SEVEN) for i in range(40)]
    assert len(requests) > 2 * BATCH_RECORDS
    reply = admin.RecordBatch(recorder_pb2.RecordBatchRequest(requests=requests), timeout=20)
    assert len(reply.results) == len(requests)
    for request, result in zip(requests, reply.results):
        assert result.HasField("recognition") and not result.replayed
        stored = result.recognition
        assert stored.digit == request.recognition.digit and stored.user == user and not stored.image
        again = admin.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id, include_image=True), timeout=10)
        assert again.image == request.recognition.image
    assert sorted(_history(admin, user)) == sorted(r.recognition.id for r in reply.results)


def test_records_with_every_field_at_its_longest_stay_under_cassandras_batch_limit(admin, cql):
    """Cassandra refuses a batch over 50 KiB (batch_size_fail_threshold): records whose texts
    are all at their longest, with 12 digits and an inline image, must be cut into batches that
    it accepts (rows.batch_bytes)."""
    user = "u" * MAX_USER
    digits = [recognizer_pb2.DigitReading(digit=1, confidence=0.9, box=recognizer_pb2.BoundingBox(width=9, height=9))] * 12
    image = SEVEN + bytes(INLINE_IMAGE_BYTES - len(SEVEN))  # the largest image that rides in the batch
    requests = [
        record_request(
            user=user, image=image, filename="f" * MAX_FILENAME, content_type="c" * MAX_CONTENT_TYPE,
            model_version="m" * MAX_MODEL_VERSION, client_address="f" * 39, number="1" * 12, digits=digits,
        )
        for _ in range(32)
    ]  # fmt: skip
    reply = admin.RecordBatch(recorder_pb2.RecordBatchRequest(requests=requests), timeout=30)
    assert all(r.HasField("recognition") for r in reply.results), [r.error for r in reply.results]
    assert len(_history(admin, user)) == 32


def test_a_request_record_would_refuse_fails_alone(admin):
    user = f"batch-{uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    first = record_request(user=user)
    first.idempotency_key = key
    admin.Record(first, timeout=10)
    reused = record_request(user=user, image=SEVEN + b"\0")  # the same key, another image
    reused.idempotency_key = key
    replay = record_request(user=user)  # the same key, the same upload: the first record again
    replay.idempotency_key = key
    requests = [record_request(user=user), record_request(user=user, digit=12), reused, replay, record_request(user=user)]
    reply = admin.RecordBatch(recorder_pb2.RecordBatchRequest(requests=requests), timeout=20)
    outcomes = [r.error.reason if r.HasField("error") else ("replayed" if r.replayed else "stored") for r in reply.results]
    assert outcomes == ["stored", "INVALID_RECORD", "IDEMPOTENCY_KEY_REUSED", "replayed", "stored"]
    assert len(_history(admin, user)) == 3  # the first record, and the two stored now


def test_a_retried_call_stores_nothing_twice(admin):
    user = f"batch-{uuid.uuid4().hex[:8]}"
    request = recorder_pb2.RecordBatchRequest(requests=[record_request(user=user, digit=d) for d in range(6)])
    first = admin.RecordBatch(request, timeout=20)
    again = admin.RecordBatch(request, timeout=20)
    assert [r.recognition.id for r in again.results] == [r.recognition.id for r in first.results]
    assert len(_history(admin, user)) == 6


def test_the_calls_token_applies_to_every_record(channel, admin):
    alice, bob = (f"batch-{uuid.uuid4().hex[:8]}" for _ in range(2))
    token = admin.CreateToken(recorder_pb2.CreateTokenRequest(user=alice), timeout=10).token
    as_alice = recorder_pb2_grpc.RecorderStub(with_token(channel, token))
    requests = [record_request(user=""), record_request(user=alice), record_request(user=bob)]
    reply = as_alice.RecordBatch(recorder_pb2.RecordBatchRequest(requests=requests), timeout=20)
    assert [r.recognition.user for r in reply.results[:2]] == [alice, alice]
    assert reply.results[2].error.reason == "FORBIDDEN"
    assert _history(admin, bob) == []
    anonymous = recorder_pb2_grpc.RecorderStub(channel)
    reply = anonymous.RecordBatch(
        recorder_pb2.RecordBatchRequest(requests=[record_request(user=""), record_request(user=alice)]), timeout=20
    )
    assert reply.results[0].recognition.user == "" and reply.results[1].error.reason == "TOKEN_REQUIRED"


def test_more_records_than_the_limit_are_refused_whole(admin):
    requests = [record_request(user="nobody") for _ in range(MAX_RECORDS + 1)]
    with pytest.raises(grpc.RpcError) as caught:
        admin.RecordBatch(recorder_pb2.RecordBatchRequest(requests=requests), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.reason_of(caught.value) == "TOO_MANY_RECORDS"
    assert _history(admin, "nobody") == []

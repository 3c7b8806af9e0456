"""Record with an idempotency key, over real gRPC against the session's real Cassandra: a retry
needs nothing but the key in common with the first attempt, and finishes a first attempt that
claimed the key but never wrote its record."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from digits import errors, trailers
from services.recorder.config import Config
from services.recorder.ids import record_id, to_millis
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN
from tests.recording import admin_stub, SEVEN, record_request

KEYSPACE = "digits_idem"


@pytest.fixture(scope="module")
def stub(cassandra):
    config = Config(host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,), keyspace=KEYSPACE, replication_factor=1, admin_token=TEST_ADMIN_TOKEN)  # noqa: E501
    with admin_stub(config) as stub:
        yield stub


def record(stub, key: str, **overrides):  # type: ignore[no-untyped-def]
    request = record_request(**overrides)
    request.idempotency_key = key
    reply, call = stub.Record.with_call(request, timeout=10)
    return reply, dict(call.trailing_metadata() or ()).get(trailers.REPLAYED) == "true"


def test_attempts_that_share_only_the_key_make_one_record(stub):
    key = str(uuid.uuid4())
    first, replayed = record(stub, key, user="ada")
    assert not replayed
    # A retry a few seconds later, as a new HTTP request would be: new request id, new time.
    later = datetime.now(timezone.utc) - timedelta(seconds=1)
    again, replayed = record(stub, key, user="ada", received_at=later)
    assert replayed and again.id == first.id
    assert again.received_at == first.received_at


def test_a_retry_completes_a_first_attempt_that_only_claimed_the_key(stub, cql):
    """The first attempt won the key, then died before its record was written."""
    key, request_id = str(uuid.uuid4()), uuid.uuid4()
    claimed_at = to_millis(datetime.now(timezone.utc) - timedelta(seconds=30))
    fingerprint = hashlib.sha256(b"bob\0" + SEVEN).digest()
    cql.execute(
        f"INSERT INTO {KEYSPACE}.idempotency_keys (idempotency_key, request_id, received_at, fingerprint) VALUES (%s, %s, %s, %s)",  # noqa: E501
        [key, request_id, claimed_at, fingerprint],
    )
    reply, replayed = record(stub, key, user="bob")
    assert replayed
    assert reply.id == str(record_id(claimed_at, request_id))
    assert cql.execute(f"SELECT digit FROM {KEYSPACE}.recognitions WHERE id = %s", [uuid.UUID(reply.id)]).one()


def test_the_key_with_other_content_is_refused_and_nothing_is_overwritten(stub, cql):
    key = str(uuid.uuid4())
    first, _ = record(stub, key, user="carol")
    with pytest.raises(grpc.RpcError) as caught:
        record(stub, key, user="carol", image=SEVEN + b"\0")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert errors.reason_of(caught.value) == "IDEMPOTENCY_KEY_REUSED"
    size = cql.execute(f"SELECT image_size FROM {KEYSPACE}.recognitions WHERE id = %s", [uuid.UUID(first.id)]).one()
    assert size.image_size == len(SEVEN)


def test_keys_expire_after_the_configured_time(stub, cql):
    key = str(uuid.uuid4())
    record(stub, key, user="dave")
    ttl = cql.execute(f"SELECT TTL(request_id) FROM {KEYSPACE}.idempotency_keys WHERE idempotency_key = %s", [key]).one()
    assert 0 < ttl[0] <= Config().idempotency_ttl_seconds

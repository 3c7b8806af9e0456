"""Who may do what through the Recorder: bearer tokens, per-record authorization, deletion and
retention, over real gRPC against the session's real Cassandra node."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from digits import errors
from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder import schema
from services.recorder.access import token_hash
from services.recorder.config import Config
from services.recorder.server import build
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN, ServiceThread, with_token
from tests.recording import record_request

KEYSPACE = "digits_access"
IMAGE_DAYS, ADDRESS_DAYS = 3, 1


@pytest.fixture(scope="module")
def service(cassandra):
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,), keyspace=KEYSPACE,
        replication_factor=1, admin_token=TEST_ADMIN_TOKEN, image_retention_days=IMAGE_DAYS,
        client_address_retention_days=ADDRESS_DAYS,
    )  # fmt: skip
    running = ServiceThread(build(config)).start()
    running.wait_ready()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def channel(service):
    with grpc.insecure_channel(service.address) as opened:
        yield opened


@pytest.fixture(scope="module")
def admin(channel):
    return recorder_pb2_grpc.RecorderStub(with_token(channel))


@pytest.fixture(scope="module")
def anonymous(channel):
    return recorder_pb2_grpc.RecorderStub(channel)


def user_stub(channel, admin, name: str) -> tuple[recorder_pb2_grpc.RecorderStub, recorder_pb2.Token]:  # type: ignore[no-untyped-def]
    token = admin.CreateToken(recorder_pb2.CreateTokenRequest(user=name), timeout=10)
    return recorder_pb2_grpc.RecorderStub(with_token(channel, token.token)), token


def fails(call, request, code: grpc.StatusCode, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    assert (caught.value.code(), errors.reason_of(caught.value)) == (code, reason), caught.value.details()


def get(record_id: str) -> recorder_pb2.GetRecognitionRequest:
    return recorder_pb2.GetRecognitionRequest(id=record_id)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_uploads_may_be_anonymous_but_reads_need_a_token(anonymous, admin):
    stored = anonymous.Record(record_request(user=""), timeout=10)
    assert stored.user == ""
    fails(anonymous.GetRecognition, get(stored.id), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
    fails(anonymous.GetImage, recorder_pb2.GetImageRequest(id=stored.id), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
    fails(anonymous.ListRecognitions, recorder_pb2.ListRecognitionsRequest(), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
    fails(anonymous.ListRecognitions, recorder_pb2.ListRecognitionsRequest(user="ada"),
          grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")  # fmt: skip
    # Naming a user takes that user's token: no one fills someone else's history.
    fails(anonymous.Record, record_request(user="ada"), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
    assert admin.GetRecognition(get(stored.id), timeout=10).id == stored.id  # an anonymous record: the admin's


@pytest.mark.parametrize("token", ["dgt_" + "x" * 43, TEST_ADMIN_TOKEN[:-1], "x"])
def test_an_unknown_token_is_refused_even_where_none_is_needed(channel, token):
    stub = recorder_pb2_grpc.RecorderStub(with_token(channel, token))
    fails(stub.Record, record_request(user=""), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    fails(stub.ListRecognitions, recorder_pb2.ListRecognitionsRequest(), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


def test_a_malformed_authorization_is_refused(channel):
    call = channel.unary_unary(
        "/digits.v1.Recorder/ListRecognitions",
        request_serializer=recorder_pb2.ListRecognitionsRequest.SerializeToString,
        response_deserializer=recorder_pb2.ListRecognitionsResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(recorder_pb2.ListRecognitionsRequest(), metadata=(("authorization", "Basic YWRhOnNlY3JldA=="),), timeout=10)
    assert errors.reason_of(caught.value) == "TOKEN_INVALID"


def test_a_user_token_records_reads_and_lists_only_its_own_user(channel, admin, cql):
    alice, bob = unique("alice"), unique("bob")
    as_alice, token = user_stub(channel, admin, alice)
    # Only the hash is kept.
    rows = list(cql.execute(f"SELECT token_hash, user FROM {KEYSPACE}.tokens WHERE token_hash = %s", [token_hash(token.token)]))
    assert [(r.token_hash, r.user) for r in rows] == [(bytes.fromhex(token.id), alice)]
    assert token.token not in str(list(cql.execute(f"SELECT * FROM {KEYSPACE}.tokens")))

    mine = as_alice.Record(record_request(user=""), timeout=10)
    assert mine.user == alice  # the token's user, filled in
    assert as_alice.Record(record_request(user=alice), timeout=10).user == alice
    fails(as_alice.Record, record_request(user=bob), grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    bobs = admin.Record(record_request(user=bob), timeout=10)  # an admin may record under anyone
    anonymous_record = admin.Record(record_request(user=""), timeout=10)

    assert as_alice.GetRecognition(get(mine.id), timeout=10).id == mine.id
    assert as_alice.GetImage(recorder_pb2.GetImageRequest(id=mine.id), timeout=10).data
    for other in (bobs.id, anonymous_record.id):  # exactly as if it did not exist
        fails(as_alice.GetRecognition, get(other), grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")
        fails(as_alice.GetImage, recorder_pb2.GetImageRequest(id=other), grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")
        fails(as_alice.DeleteRecognition, recorder_pb2.DeleteRecognitionRequest(id=other),
              grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")  # fmt: skip

    own = as_alice.ListRecognitions(recorder_pb2.ListRecognitionsRequest(), timeout=10)
    assert {r.user for r in own.recognitions} == {alice} and len(own.recognitions) == 2
    paged = as_alice.ListRecognitions(recorder_pb2.ListRecognitionsRequest(page_size=1), timeout=10)
    second = as_alice.ListRecognitions(
        recorder_pb2.ListRecognitionsRequest(page_size=1, page_token=paged.next_page_token), timeout=10
    )
    assert {paged.recognitions[0].id, second.recognitions[0].id} == {r.id for r in own.recognitions}
    fails(as_alice.ListRecognitions, recorder_pb2.ListRecognitionsRequest(user=bob), grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    fails(as_alice.ListRecognitions, recorder_pb2.ListRecognitionsRequest(window=recorder_pb2.TimeWindow()),
          grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")  # fmt: skip
    fails(as_alice.CreateToken, recorder_pb2.CreateTokenRequest(user=alice), grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    # The admin sees the time window, without a filter too.
    window = admin.ListRecognitions(recorder_pb2.ListRecognitionsRequest(page_size=1000), timeout=10)
    assert {mine.id, bobs.id, anonymous_record.id} <= {r.id for r in window.recognitions}


def test_a_revoked_token_stops_working(channel, admin):
    as_carol, token = user_stub(channel, admin, unique("carol"))
    as_carol.ListRecognitions(recorder_pb2.ListRecognitionsRequest(), timeout=10)  # cached now
    admin.RevokeToken(recorder_pb2.RevokeTokenRequest(id=token.id), timeout=10)
    fails(as_carol.ListRecognitions, recorder_pb2.ListRecognitionsRequest(), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    fails(admin.RevokeToken, recorder_pb2.RevokeTokenRequest(id=token.id), grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND")
    fails(admin.RevokeToken, recorder_pb2.RevokeTokenRequest(id="abc"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TOKEN_ID")
    fails(admin.CreateToken, recorder_pb2.CreateTokenRequest(user=""), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER")


def _rows_of(cql, stored: recorder_pb2.Recognition) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """How many rows the record has in each table (the legacy ones too: a deletion must empty
    them for records copied from them)."""
    record_id = uuid.UUID(stored.id)
    received = stored.received_at.ToDatetime(tzinfo=timezone.utc)
    day, month = received.date(), received.date().replace(day=1)
    hour, shard = received.replace(minute=0, second=0, microsecond=0), schema.shard_of(record_id)
    queries = {
        "recognitions": ("SELECT id FROM {}.recognitions WHERE id = %s", [record_id]),
        "recognitions_by_hour": ("SELECT id FROM {}.recognitions_by_hour WHERE hour = %s AND shard = %s AND id = %s",
                                 [hour, shard, record_id]),
        "recognitions_by_user_day": ("SELECT id FROM {}.recognitions_by_user_day WHERE user = %s AND day = %s "
                                     "AND id = %s", [stored.user, day, record_id]),
        "images": ("SELECT chunk FROM {}.images WHERE id = %s", [record_id]),
        "recognitions_by_day": ("SELECT id FROM {}.recognitions_by_day WHERE day = %s AND id = %s", [day, record_id]),
        "recognitions_by_user": ("SELECT id FROM {}.recognitions_by_user WHERE user = %s AND month = %s AND id = %s",
                                 [stored.user, month, record_id]),
    }  # fmt: skip
    return {table: len(list(cql.execute(cql_text.format(KEYSPACE), values))) for table, (cql_text, values) in queries.items()}


STORED = {"recognitions": 1, "recognitions_by_hour": 1, "recognitions_by_user_day": 1, "images": 1,
          "recognitions_by_day": 0, "recognitions_by_user": 0}  # fmt: skip
GONE = dict.fromkeys(STORED, 0)


def test_delete_removes_the_record_from_every_table_for_good(channel, admin, cql):
    as_dave, _ = user_stub(channel, admin, unique("dave"))
    request = record_request(user="")
    stored = as_dave.Record(request, timeout=10)
    assert _rows_of(cql, stored) == STORED
    as_dave.DeleteRecognition(recorder_pb2.DeleteRecognitionRequest(id=stored.id), timeout=10)
    assert _rows_of(cql, stored) == GONE
    fails(as_dave.GetRecognition, get(stored.id), grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")
    fails(as_dave.DeleteRecognition, recorder_pb2.DeleteRecognitionRequest(id=stored.id),
          grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")  # fmt: skip
    assert list(as_dave.ListRecognitions(recorder_pb2.ListRecognitionsRequest(), timeout=10).recognitions) == []
    window = admin.ListRecognitions(recorder_pb2.ListRecognitionsRequest(page_size=1000), timeout=10)
    assert stored.id not in {r.id for r in window.recognitions}
    # A retry of the original write arriving after the deletion (same request id and time, so
    # the same id and rows) stays hidden under the deletion's later timestamp.
    assert as_dave.Record(request, timeout=10).id == stored.id
    assert _rows_of(cql, stored) == GONE
    # The admin may delete anyone's.
    other = admin.Record(record_request(user=""), timeout=10)
    admin.DeleteRecognition(recorder_pb2.DeleteRecognitionRequest(id=other.id), timeout=10)
    fails(admin.GetRecognition, get(other.id), grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")


def test_images_and_client_addresses_expire_with_their_retention_periods(admin, cql):
    stored = admin.Record(record_request(user=unique("erin")), timeout=10)
    record_id = uuid.UUID(stored.id)
    image_ttl = cql.execute(f"SELECT TTL(data) AS ttl FROM {KEYSPACE}.images WHERE id = %s", [record_id]).one().ttl
    assert IMAGE_DAYS * 86_400 - 120 < image_ttl <= IMAGE_DAYS * 86_400
    row = cql.execute(
        f"SELECT TTL(client_address) AS address, TTL(digit) AS digit FROM {KEYSPACE}.recognitions WHERE id = %s", [record_id]
    ).one()
    assert ADDRESS_DAYS * 86_400 - 120 < row.address <= ADDRESS_DAYS * 86_400
    assert row.digit is None  # the rest of the record is kept until deleted
    for table in ("recognitions_by_hour", "recognitions_by_user_day"):
        ttls = [r.ttl for r in cql.execute(f"SELECT TTL(client_address) AS ttl FROM {KEYSPACE}.{table} ALLOW FILTERING")]
        assert ttls and all(t is not None for t in ttls), table


def test_an_expired_image_is_told_apart_from_a_lost_one(admin, cql):
    old = admin.Record(record_request(datetime.now(timezone.utc) - timedelta(days=IMAGE_DAYS + 1), user=""), timeout=10)
    new = admin.Record(record_request(user=""), timeout=10)
    for stored in (old, new):  # what the TTL does, done now
        cql.execute(f"DELETE FROM {KEYSPACE}.images WHERE id = %s", [uuid.UUID(stored.id)])
    fails(admin.GetImage, recorder_pb2.GetImageRequest(id=old.id), grpc.StatusCode.NOT_FOUND, "IMAGE_EXPIRED")
    fails(admin.GetImage, recorder_pb2.GetImageRequest(id=new.id), grpc.StatusCode.DATA_LOSS, "IMAGE_INCOMPLETE")
    assert admin.GetRecognition(get(old.id), timeout=10).digit == old.digit

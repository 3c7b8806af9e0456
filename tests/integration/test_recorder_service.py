"""The Recorder over real gRPC, against the real Cassandra node started for the session."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder.config import Config
from services.recorder.server import build
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import DATA, ServiceThread, free_port

KEYSPACE = "digits_it"
SEVEN = (DATA / "seven.png").read_bytes()


@pytest.fixture(scope="module")
def stub(cassandra):
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,),
        keyspace=KEYSPACE, replication_factor=1, max_image_bytes=1_000_000,
    )  # fmt: skip
    service = ServiceThread(build(config)).start()
    service.wait_ready()
    with grpc.insecure_channel(service.address) as channel:
        yield recorder_pb2_grpc.RecorderStub(channel)
    service.stop()


def recognition(**overrides) -> recorder_pb2.Recognition:
    fields = dict(
        digit=7, confidence=0.98, probabilities=[0.0] * 7 + [0.98, 0.02, 0.0], model_version="abc123",
        user="ada", image=SEVEN, content_type="image/png", filename="seven.png", client_address="127.0.0.1",
    )  # fmt: skip
    fields.update(overrides)
    return recorder_pb2.Recognition(**fields)


def record(stub, **overrides) -> recorder_pb2.Recognition:
    request = recorder_pb2.RecordRequest(request_id=str(uuid.uuid4()), recognition=recognition(**overrides))
    return stub.Record(request, timeout=10)


def test_record_then_get_returns_the_same_recognition(stub):
    stored = record(stub)
    assert uuid.UUID(stored.id).version == 1  # time-based: sortable and unique per write
    assert stored.received_at.seconds > 0
    fetched = stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id, include_image=True), timeout=10)
    assert fetched.image == SEVEN
    assert fetched.digit == 7 and fetched.user == "ada" and fetched.filename == "seven.png"
    assert fetched.probabilities == pytest.approx(stored.probabilities)
    assert fetched.received_at == stored.received_at
    without_image = stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id), timeout=10)
    assert without_image.image == b"" and without_image.image_size == len(SEVEN)


def test_the_row_is_in_cassandra(stub, cql):
    stored = record(stub, user="grace", digit=3, confidence=0.5)
    row = cql.execute(
        f"SELECT digit, confidence, user, image, content_type FROM {KEYSPACE}.recognitions WHERE id = %s",
        [uuid.UUID(stored.id)],
    ).one()
    assert row is not None
    assert (row.digit, row.user, row.content_type, row.image) == (3, "grace", "image/png", SEVEN)
    assert row.confidence == pytest.approx(0.5)


def test_concurrent_records_never_overwrite_each_other(stub, cql):
    # The seed keyed rows by timestamp, so two requests in the same millisecond lost one.
    with ThreadPoolExecutor(16) as pool:
        stored = list(pool.map(lambda i: record(stub, user=f"concurrent-{i}"), range(64)))
    ids = {uuid.UUID(s.id) for s in stored}
    assert len(ids) == 64
    select = cql.prepare(f"SELECT user FROM {KEYSPACE}.recognitions WHERE id = ?")
    users = {cql.execute(select, [record_id]).one().user for record_id in ids}
    assert users == {f"concurrent-{i}" for i in range(64)}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": b""}, "image is required"),
        ({"digit": 12}, "digit"),
        ({"confidence": 1.5}, "confidence"),
        ({"probabilities": [0.5, 0.5]}, "probabilities"),
        ({"user": "u" * 500}, "user"),
        ({"image": b"x" * 1_000_001}, "limit"),
    ],
    ids=["no-image", "digit", "confidence", "probabilities", "long-user", "huge-image"],
)
def test_invalid_records_are_refused(stub, overrides, message):
    with pytest.raises(grpc.RpcError) as caught:
        record(stub, **overrides)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def test_bad_request_id_is_refused(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Record(recorder_pb2.RecordRequest(request_id="not-a-uuid", recognition=recognition()), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_and_malformed_ids(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=str(uuid.uuid1())), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id="'; DROP TABLE x; --"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


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

"""A recorder that starts before its tables exist, as in Kubernetes, where the schema Job is a
Helm post-install hook and so runs after the recorder's pods are up. Real gRPC, the session's
real Cassandra node."""

from __future__ import annotations

import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.v1 import recorder_pb2_grpc
from services.recorder import migrate
from services.recorder.config import Config
from services.recorder.server import build
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import ServiceThread
from tests.recording import record_request


def test_serves_unavailable_until_the_schema_exists_then_records(cassandra, cql) -> None:
    keyspace = f"digits_late_{int(time.time())}"
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,),
        keyspace=keyspace, replication_factor=1, create_schema=False, migrate_wait_seconds=60,
    )  # fmt: skip
    service = ServiceThread(build(config)).start()
    try:
        # Connected to Cassandra is enough to be ready: waiting for the tables here would
        # deadlock `helm install --wait`, which runs the hook only once the pods are ready.
        service.wait_ready(timeout=60)
        with grpc.insecure_channel(service.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = recorder_pb2_grpc.RecorderStub(channel)
            try:
                stub.Record(record_request(), timeout=10)
                raise AssertionError("a Record before the schema exists must fail")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                assert "schema" in exc.details()

            migrate.migrate(config)  # what the Job runs

            deadline = time.monotonic() + 30
            while True:
                try:
                    stored = stub.Record(record_request(user=""), timeout=10)  # anonymous: no token
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                    assert time.monotonic() < deadline, "the recorder never found the new tables"
                    time.sleep(0.5)
            row = cql.execute(f"SELECT digit FROM {keyspace}.recognitions WHERE id = %s", [uuid.UUID(stored.id)]).one()
            assert row is not None and row.digit == stored.digit
    finally:
        service.stop()
        cql.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")

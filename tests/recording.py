"""Building Recorder requests in tests, and running a recorder for them (integration and
cluster suites share these)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder.config import Config
from services.recorder.server import build
from tests.helpers import DATA, ServiceThread, with_token

SEVEN = (DATA / "seven.png").read_bytes()


@contextmanager
def recorder_channel(config: Config) -> Iterator[grpc.Channel]:
    """A recorder with ``config`` running in this process, and a channel to it (no token)."""
    service = ServiceThread(build(config)).start()
    try:
        service.wait_ready()
        with grpc.insecure_channel(service.address) as channel:
            yield channel
    finally:
        service.stop()


@contextmanager
def admin_stub(config: Config) -> Iterator[recorder_pb2_grpc.RecorderStub]:
    """A recorder with ``config`` running in this process, and a stub to it with the admin token."""
    with recorder_channel(config) as channel:
        yield recorder_pb2_grpc.RecorderStub(with_token(channel))


def timestamp(moment: datetime | None = None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment or datetime.now(timezone.utc))
    return stamp


def recognition(**overrides) -> recorder_pb2.Recognition:
    fields = dict(
        digit=7, confidence=0.98, probabilities=[0.0] * 7 + [0.98, 0.02, 0.0], model_version="abc123",
        user="ada", image=SEVEN, content_type="image/png", filename="seven.png", client_address="127.0.0.1",
    )  # fmt: skip
    fields.update(overrides)
    return recorder_pb2.Recognition(**fields)


def record_request(received_at: datetime | None = None, **overrides) -> recorder_pb2.RecordRequest:
    """A request as the gateway sends it: a fresh request id and the time of receipt."""
    return recorder_pb2.RecordRequest(
        request_id=str(uuid.uuid4()), recognition=recognition(received_at=timestamp(received_at), **overrides)
    )

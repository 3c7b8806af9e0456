"""The Recorder gRPC service: stores recognitions in Cassandra and reads them back."""

from __future__ import annotations

import asyncio
import logging
import uuid

import grpc
from cassandra import DriverException, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import Cluster, NoHostAvailable
from google.protobuf.timestamp_pb2 import Timestamp

from digits.grpc_server import GrpcService
from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder.config import Config
from services.recorder.store import RecognitionStore, Record

log = logging.getLogger(__name__)

# Longest accepted text fields: enough for any real value, small enough to bound a row.
MAX_USER = 128
MAX_FILENAME = 255
MAX_CONTENT_TYPE = 127
MAX_MODEL_VERSION = 64

# Cassandra could not reach the consistency level or answer in time: nothing was acknowledged,
# and the client may retry (with the same request_id).
_UNAVAILABLE = (Unavailable, WriteTimeout, ReadTimeout, OperationTimedOut, NoHostAvailable)


def _to_proto(record: Record) -> recorder_pb2.Recognition:
    received_at = Timestamp()
    received_at.FromDatetime(record.received_at)
    return recorder_pb2.Recognition(
        id=str(record.id),
        digit=record.digit,
        confidence=record.confidence,
        probabilities=record.probabilities,
        model_version=record.model_version,
        user=record.user,
        image=record.image or b"",
        content_type=record.content_type,
        filename=record.filename,
        image_size=record.image_size,
        client_address=record.client_address,
        received_at=received_at,
    )


def _invalid(rec: recorder_pb2.Recognition, request_id: str, max_image_bytes: int) -> str | None:
    """Why a Record request cannot be stored, or None."""
    if not rec.image:
        return "recognition.image is required"
    if len(rec.image) > max_image_bytes:
        return f"recognition.image is {len(rec.image)} bytes; the limit is {max_image_bytes}"
    if not 0 <= rec.digit <= 9:
        return "recognition.digit must be 0-9"
    if not 0.0 <= rec.confidence <= 1.0:
        return "recognition.confidence must be within [0, 1]"
    if len(rec.probabilities) not in (0, 10):
        return "recognition.probabilities must hold 10 values (or none)"
    for name, limit in (
        ("user", MAX_USER),
        ("filename", MAX_FILENAME),
        ("content_type", MAX_CONTENT_TYPE),
        ("model_version", MAX_MODEL_VERSION),
    ):
        if len(getattr(rec, name)) > limit:
            return f"recognition.{name} is longer than {limit} characters"
    if request_id:
        try:
            uuid.UUID(request_id)
        except ValueError:
            return "request_id must be a UUID"
    return None


class RecorderServicer(recorder_pb2_grpc.RecorderServicer):
    def __init__(self, config: Config) -> None:
        self._config = config
        self._cluster: Cluster | None = None
        self._store: RecognitionStore | None = None

    async def connect(self) -> None:
        """Wait for Cassandra with capped exponential backoff; health stays NOT_SERVING meanwhile."""
        delay = 0.5
        while True:
            try:
                self._cluster, self._store = await asyncio.to_thread(RecognitionStore.open, self._config)
                log.info("cassandra ready", extra={"hosts": list(self._config.cassandra_hosts)})
                return
            except (DriverException, NoHostAvailable, OSError) as exc:
                log.warning("cassandra not ready; retrying", extra={"error": str(exc), "retry_in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)

    async def _require_store(self, context) -> RecognitionStore:  # type: ignore[no-untyped-def]
        if self._store is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not connected to Cassandra yet; retry shortly")
        return self._store  # type: ignore[return-value]

    async def Record(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        rec = request.recognition
        problem = _invalid(rec, request.request_id, self._config.max_image_bytes)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            record = await store.insert(
                request_id=uuid.UUID(request.request_id) if request.request_id else None,
                digit=rec.digit,
                confidence=rec.confidence,
                probabilities=list(rec.probabilities),
                model_version=rec.model_version,
                user=rec.user,
                image=rec.image,
                content_type=rec.content_type,
                filename=rec.filename,
                client_address=rec.client_address,
            )
        except _UNAVAILABLE as exc:
            log.warning("write failed", extra={"error": str(exc)})
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"Cassandra could not store the record at {self._config.write_consistency} "
                f"({type(exc).__name__}); nothing was saved, retry later",
            )
        log.info("recorded", extra={"id": str(record.id), "digit": record.digit, "bytes": record.image_size})
        return _to_proto(record)

    async def GetRecognition(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        try:
            record_id = uuid.UUID(request.id)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"id {request.id!r} is not a UUID")
        try:
            record = await store.get(record_id, include_image=request.include_image)
        except _UNAVAILABLE as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"Cassandra could not answer at {self._config.read_consistency} ({type(exc).__name__}); retry later",
            )
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no recognition with id {request.id}")
        return _to_proto(record)


def build(config: Config) -> GrpcService:
    servicer = RecorderServicer(config)
    return GrpcService(
        register=lambda server: recorder_pb2_grpc.add_RecorderServicer_to_server(servicer, server),
        service_names=[recorder_pb2.DESCRIPTOR.services_by_name["Recorder"].full_name],
        startup=servicer.connect,
        shutdown=servicer.close,
        host=config.host,
        port=config.port,
        grace_seconds=config.grace_seconds,
        max_message_bytes=config.max_image_bytes + 64 * 1024,
    )

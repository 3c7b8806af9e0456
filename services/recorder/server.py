"""The Recorder gRPC service: stores recognitions in Cassandra and reads them back."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import NoReturn

import grpc
from cassandra import DriverException, InvalidRequest, OperationTimedOut, ReadTimeout, Unauthorized, Unavailable, WriteTimeout
from cassandra.cluster import Cluster, NoHostAvailable, Session
from google.protobuf.timestamp_pb2 import Timestamp

from digits import errors, trailers
from digits.grpc_server import GrpcService
from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder import paging
from services.recorder.config import Config
from services.recorder.ids import record_id, to_millis
from services.recorder.metrics import ERRORS, RECORDS
from services.recorder.requests import MAX_USER, fingerprint, invalid_record
from services.recorder.store import Claim, DeadlineExceeded, Page, RecognitionStore, Record, connect

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50

# Cassandra could not reach the consistency level or answer in time: nothing was acknowledged,
# and the client may retry (with the same request_id).
# Unauthorized is here because Cassandra checks permissions by reading system_auth at
# LOCAL_QUORUM too: with too few nodes up, that read fails as "Unauthorized".
_UNAVAILABLE = (
    Unavailable, WriteTimeout, ReadTimeout, OperationTimedOut, NoHostAvailable, DeadlineExceeded, Unauthorized,
)  # fmt: skip
_KIND = {
    Unavailable: "unavailable",
    WriteTimeout: "write_timeout",
    ReadTimeout: "read_timeout",
    OperationTimedOut: "client_timeout",
    DeadlineExceeded: "client_timeout",
    NoHostAvailable: "no_host",
}
# What a person can do about each failure.
_ADVICE = {
    "unavailable": "too few replicas are up: check that the Cassandra nodes are running (nodetool status)",
    "write_timeout": "replicas did not answer in time: a node may be down or overloaded",
    "read_timeout": "replicas did not answer in time: a node may be down or overloaded",
    "client_timeout": "Cassandra did not answer within the deadline: a node may be down or overloaded",
    "no_host": "no Cassandra node can be reached: check the nodes and RECORDER_CASSANDRA_HOSTS",
    "auth_unavailable": "too few replicas of system_auth are up to check permissions: check the Cassandra nodes",
    "unauthorized": "the recorder's role lacks a permission: GRANT SELECT, MODIFY on the keyspace to it",
}


def _kind(exc: Exception) -> str:
    if isinstance(exc, Unauthorized):
        return "auth_unavailable" if "consistency level" in str(exc) else "unauthorized"
    return _KIND.get(type(exc), "other")


def _timestamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def _to_proto(record: Record) -> recorder_pb2.Recognition:
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
        received_at=_timestamp(record.received_at),
    )


class RecorderServicer(recorder_pb2_grpc.RecorderServicer):
    def __init__(self, config: Config) -> None:
        self._config = config
        self._token_key = config.page_token_key.encode() or secrets.token_bytes(32)
        if not config.page_token_key:
            log.warning("RECORDER_PAGE_TOKEN_KEY is not set: page tokens only work with this process")
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._store: RecognitionStore | None = None
        self._awaiting_schema: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Connect to Cassandra with capped exponential backoff (NOT_SERVING meanwhile), then
        prepare the statements.

        Connected but without the tables yet still counts as started: in Kubernetes the
        migration Job that creates them runs after the Deployments are up (a Helm post-install
        hook), so waiting for them here would deadlock `helm install --wait`. Calls get
        UNAVAILABLE, which the gateway answers with 503 + Retry-After, until a background task
        finds the tables.
        """
        delay = 0.5
        while True:
            try:
                if self._session is None:
                    self._cluster, self._session = await asyncio.to_thread(connect, self._config)
                self._store = await asyncio.to_thread(RecognitionStore.prepare, self._session, self._config)
                log.info("cassandra ready", extra={"hosts": list(self._config.cassandra_hosts)})
                return
            except InvalidRequest as exc:
                log.warning("connected, but the schema is not there yet; waiting for it", extra={"error": str(exc)})
                self._awaiting_schema = asyncio.create_task(self._prepare_when_schema_exists())
                return
            except (DriverException, NoHostAvailable, OSError) as exc:
                log.warning("cassandra not ready; retrying", extra={"error": str(exc), "retry_in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _prepare_when_schema_exists(self, every: float = 2.0) -> None:
        assert self._session is not None
        while self._store is None:
            await asyncio.sleep(every)
            try:
                self._store = await asyncio.to_thread(RecognitionStore.prepare, self._session, self._config)
                log.info("schema found; cassandra ready")
            except (DriverException, NoHostAvailable, OSError):
                pass

    async def close(self) -> None:
        if self._awaiting_schema is not None:
            self._awaiting_schema.cancel()
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)

    # ---- helpers

    async def _require_store(self, context) -> RecognitionStore:  # type: ignore[no-untyped-def]
        if self._store is None:
            if self._session is not None:
                await errors.abort(
                    context, grpc.StatusCode.UNAVAILABLE, "SCHEMA_NOT_READY",
                    "the keyspace and tables do not exist yet (the schema migration has not run); retry shortly",
                )  # fmt: skip
            await errors.abort(
                context, grpc.StatusCode.UNAVAILABLE, "CASSANDRA_NOT_CONNECTED", "not connected to Cassandra yet; retry shortly"
            )
        return self._store  # type: ignore[return-value]

    def _deadline(self, context) -> float:  # type: ignore[no-untyped-def]
        """Monotonic time by which Cassandra must have answered: a little before the caller's
        deadline, so the caller hears UNAVAILABLE (and why) rather than DEADLINE_EXCEEDED."""
        budget = self._config.request_timeout_seconds * 3
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, remaining - min(0.2, remaining * 0.1))
        return time.monotonic() + budget

    @staticmethod
    async def _fail(context, operation: str, kind: str, code: grpc.StatusCode, message: str, reason: str) -> NoReturn:  # type: ignore[no-untyped-def]
        """Count the failure (by operation and kind) and end the call with ErrorInfo(reason)."""
        ERRORS.labels(operation, kind).inc()
        await errors.abort(context, code, reason, message)

    async def _cassandra_failed(self, context, operation: str, exc: Exception, consistency: str) -> NoReturn:  # type: ignore[no-untyped-def]
        kind = _kind(exc)
        log.warning("cassandra failed", extra={"operation": operation, "kind": kind, "error": str(exc)})
        if operation == "record":
            what = f"could not store the record at {consistency}; it was not acknowledged, and retrying with the same request_id and received_at is safe"
        else:
            what = f"could not answer at {consistency}; retry later"
        code = grpc.StatusCode.PERMISSION_DENIED if kind == "unauthorized" else grpc.StatusCode.UNAVAILABLE
        message = f"Cassandra {what} ({kind}: {_ADVICE.get(kind, str(exc))})"
        await self._fail(context, operation, kind, code, message, f"CASSANDRA_{kind.upper()}")

    # ---- RPCs

    async def Record(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        now = datetime.now(timezone.utc)
        problem = invalid_record(request, self._config.max_image_bytes, now)
        if problem:
            await self._fail(context, "record", "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, problem, "INVALID_RECORD")
        rec = request.recognition
        received_at = to_millis(rec.received_at.ToDatetime(tzinfo=timezone.utc) if rec.HasField("received_at") else now)
        request_id = uuid.UUID(request.request_id) if request.request_id else None
        replayed = False
        if request.idempotency_key:
            candidate = Claim(request_id or uuid.uuid4(), received_at, fingerprint(rec), first=True)
            try:
                claim = await store.claim(request.idempotency_key, candidate, self._deadline(context))
            except _UNAVAILABLE as exc:
                await self._cassandra_failed(context, "record", exc, store.write_consistency)
            if claim.fingerprint != candidate.fingerprint:
                await self._fail(
                    context, "record", "idempotency_key_reused", grpc.StatusCode.FAILED_PRECONDITION,
                    "this Idempotency-Key was used before for another upload; use a new key for a new upload",
                    "IDEMPOTENCY_KEY_REUSED",
                )  # fmt: skip
            # The record is the first attempt's, whether or not that attempt finished: writing
            # it again (same id, same rows) completes it, and changes nothing if it had.
            request_id, received_at, replayed = claim.request_id, claim.received_at, not claim.first
        record = Record(
            # Without a request id there is nothing to recognise a retry by: a fresh id.
            id=record_id(received_at, request_id or uuid.uuid4()),
            request_id=request_id,
            digit=rec.digit,
            confidence=rec.confidence,
            probabilities=list(rec.probabilities),
            model_version=rec.model_version,
            user=rec.user,
            image=rec.image,
            content_type=rec.content_type,
            filename=rec.filename,
            image_size=len(rec.image),
            client_address=rec.client_address,
            received_at=received_at,
        )
        try:
            await store.record(record, self._deadline(context))
        except _UNAVAILABLE as exc:
            await self._cassandra_failed(context, "record", exc, store.write_consistency)
        RECORDS.inc()
        log.info("recorded", extra={"id": str(record.id), "digit": record.digit, "bytes": record.image_size, "replayed": replayed})  # noqa: E501
        if replayed:
            context.set_trailing_metadata(((trailers.REPLAYED, "true"),))
        return _to_proto(record)

    async def _read(self, context, operation: str, record_id: str, include_image: bool) -> Record:  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        try:
            parsed = uuid.UUID(record_id)
        except ValueError:
            await self._fail(
                context, operation, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, f"id {record_id!r} is not a UUID",
                "INVALID_ID",
            )
        record = None
        # Every record id is time-based; any other UUID names nothing (and Cassandra refuses it).
        if parsed.version == 1:
            try:
                record = await store.get(parsed, self._deadline(context), include_image=include_image)
            except _UNAVAILABLE as exc:
                await self._cassandra_failed(context, operation, exc, store.read_consistency)
        if record is None:
            await self._fail(
                context, operation, "not_found", grpc.StatusCode.NOT_FOUND, f"no recognition with id {record_id}",
                "RECOGNITION_NOT_FOUND",
            )
        if include_image and len(record.image or b"") != record.image_size:
            # Cannot happen with quorum reads and writes (the image is written first); say so loudly if it does.
            await self._fail(
                context, operation, "data_loss", grpc.StatusCode.DATA_LOSS,
                f"the image of {record_id} has {len(record.image or b'')} of its {record.image_size} bytes",
                "IMAGE_INCOMPLETE",
            )  # fmt: skip
        return record

    async def GetRecognition(self, request, context):  # type: ignore[no-untyped-def]
        operation = "get_image" if request.include_image else "get"
        return _to_proto(await self._read(context, operation, request.id, request.include_image))

    async def GetImage(self, request, context):  # type: ignore[no-untyped-def]
        record = await self._read(context, "get_image", request.id, include_image=True)
        return recorder_pb2.Image(data=record.image, content_type=record.content_type, filename=record.filename)

    async def ListRecognitions(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        filter_kind = request.WhichOneof("filter")
        operation = "list_by_user" if filter_kind == "user" else "list_by_window"
        try:
            query, cursor = self._list_query(request)
        except ValueError as exc:
            reason = "INVALID_PAGE_TOKEN" if isinstance(exc, paging.BadToken) else "INVALID_QUERY"
            await self._fail(context, operation, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, str(exc), reason)
        size = request.page_size or DEFAULT_PAGE_SIZE
        deadline = self._deadline(context)
        try:
            page: Page
            if isinstance(query, paging.UserQuery):
                page = await store.list_by_user(query, cursor, size, deadline)
            else:
                page = await store.list_by_window(query, cursor, size, deadline)
        except _UNAVAILABLE as exc:
            await self._cassandra_failed(context, operation, exc, store.read_consistency)
        return recorder_pb2.ListRecognitionsResponse(
            recognitions=[_to_proto(r) for r in page.records],
            next_page_token=paging.encode(query, page.next_cursor, self._token_key) if page.next_cursor else "",
        )

    def _list_query(self, request) -> tuple[paging.Query, paging.Cursor | None]:  # type: ignore[no-untyped-def]
        """The query and where to continue it; ValueError says what is wrong with the request."""
        if not 0 <= request.page_size <= self._config.max_page_size:
            raise ValueError(f"page_size must be within 1..{self._config.max_page_size} (0 means {DEFAULT_PAGE_SIZE})")
        kind = request.WhichOneof("filter")
        if kind is None:
            raise ValueError("set either user or window")
        if kind == "user" and not request.user:
            raise ValueError("user must not be empty (anonymous uploads are only listed by time window)")
        if len(request.user) > MAX_USER:
            raise ValueError(f"user is longer than {MAX_USER} characters")
        if request.page_token:
            query, cursor = paging.decode(request.page_token, self._token_key)  # BadToken is a ValueError
            if not self._same_query(request, query):
                raise paging.BadToken("page_token belongs to another query; start again without it")
            if isinstance(query, paging.WindowQuery):
                # Signed, and checked again all the same: a key that leaked, or limits lowered
                # since the token was issued, must not open a longer walk.
                self._check_window(query.since, query.until)
                if not paging.day_of(query.since) <= cursor.bucket <= paging.day_of(query.until):
                    raise paging.BadToken("page_token points outside its window")
            return query, cursor
        if kind == "user":
            return paging.UserQuery(request.user), None
        window = request.window
        until = to_millis(window.until.ToDatetime(tzinfo=timezone.utc) if window.HasField("until") else datetime.now(timezone.utc))
        since = to_millis(window.since.ToDatetime(tzinfo=timezone.utc)) if window.HasField("since") else until - timedelta(days=1)
        self._check_window(since, until)
        return paging.WindowQuery(since, until), None

    def _check_window(self, since: datetime, until: datetime) -> None:
        if since > until:
            raise ValueError("window.since is after window.until")
        if until - since > timedelta(days=self._config.max_window_days):
            raise ValueError(f"the window is longer than {self._config.max_window_days} days; page through shorter ones")

    @staticmethod
    def _same_query(request, query: paging.Query) -> bool:  # type: ignore[no-untyped-def]
        if isinstance(query, paging.UserQuery):
            return request.WhichOneof("filter") == "user" and request.user == query.user
        if request.WhichOneof("filter") != "window":
            return False
        # Unset bounds take the token's (defaults were resolved on the first page).
        w = request.window
        return (not w.HasField("since") or to_millis(w.since.ToDatetime(tzinfo=timezone.utc)) == query.since) and (
            not w.HasField("until") or to_millis(w.until.ToDatetime(tzinfo=timezone.utc)) == query.until
        )


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

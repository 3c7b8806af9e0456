"""What every RPC of the recorder shares: the Cassandra connection, deadlines, how a call
fails, the access checks, and reading a record the caller may see.

The RPCs themselves live in ``server.py`` (records), ``feedback.py`` (labels and statistics) and
``tokens.py`` (user tokens), each a class on top of this one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import NoReturn

import grpc
from cassandra import DriverException, InvalidRequest
from cassandra.cluster import Cluster, NoHostAvailable, Session

from digits import errors
from services.recorder import failures
from services.recorder.access import Authenticator, InvalidToken, Principal, bearer_token
from services.recorder.config import Config
from services.recorder.metrics import ERRORS
from services.recorder.records import Record
from services.recorder.session import connect
from services.recorder.store import RecognitionStore

log = logging.getLogger(__name__)

# gRPC codes of the access checks, and the reasons a client (the gateway) tells apart.
_TOKEN_REQUIRED = (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
_TOKEN_INVALID = (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
_FORBIDDEN = (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")


class RecorderBase:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._token_key = config.page_token_key.encode() or secrets.token_bytes(32)
        if not config.page_token_key:
            log.warning("RECORDER_PAGE_TOKEN_KEY is not set: page tokens only work with this process")
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._store: RecognitionStore | None = None
        self._awaiting_schema: asyncio.Task[None] | None = None
        if not config.admin_token:
            log.warning("RECORDER_ADMIN_TOKEN is not set: no one can list time windows or issue tokens")
        self._auth = Authenticator(config.admin_token, self._token_user, config.token_cache_seconds)

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
        kind = failures.kind(exc)
        log.warning("cassandra failed", extra={"operation": operation, "kind": kind, "error": str(exc)})
        if operation in ("record", "delete"):
            what = f"could not {'store the record' if operation == 'record' else 'delete the record'} at {consistency}; it was not acknowledged, and retrying is safe"  # noqa: E501
        else:
            what = f"could not answer at {consistency}; retry later"
        code = grpc.StatusCode.PERMISSION_DENIED if kind == "unauthorized" else grpc.StatusCode.UNAVAILABLE
        message = f"Cassandra {what} ({kind}: {failures.ADVICE.get(kind, str(exc))})"
        await self._fail(context, operation, kind, code, message, f"CASSANDRA_{kind.upper()}")

    # ---- access

    async def _token_user(self, digest: bytes) -> str | None:
        assert self._store is not None
        return await self._store.token_user(digest, time.monotonic() + self._config.request_timeout_seconds)

    async def _principal(self, context, operation: str) -> Principal | None:  # type: ignore[no-untyped-def]
        """The caller (None: anonymous); a bad token ends the call with UNAUTHENTICATED.
        Callers have checked that the store is ready."""
        try:
            return await self._auth.principal(bearer_token(context.invocation_metadata()))
        except InvalidToken as exc:
            code, reason = _TOKEN_INVALID
            await self._fail(context, operation, "unauthenticated", code, str(exc), reason)
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, operation, exc, self._config.read_consistency.upper())

    async def _deny(self, context, operation: str, principal: Principal | None, what: str) -> NoReturn:  # type: ignore[no-untyped-def]
        """Refuse ``what`` (a gerund phrase): 'needs a token' to the anonymous, 'not with this token'
        to the rest."""
        if principal is None:
            code, reason = _TOKEN_REQUIRED
            await self._fail(
                context, operation, "unauthenticated", code, f"{what} needs a bearer token", reason
            )
        code, reason = _FORBIDDEN
        await self._fail(context, operation, "forbidden", code, f"this token does not allow {what}", reason)

    async def _require_admin(self, context, operation: str, what: str) -> None:  # type: ignore[no-untyped-def]
        principal = await self._principal(context, operation)
        if principal is None or not principal.admin:
            await self._deny(context, operation, principal, what)

    # ---- a record the caller may see

    async def _read(self, context, operation: str, record_id: str, include_image: bool) -> Record:  # type: ignore[no-untyped-def]
        """The record ``record_id``, if the caller may see it; else the call ends."""
        store = await self._require_store(context)
        principal = await self._principal(context, operation)
        if principal is None:
            await self._deny(context, operation, None, "reading or deleting a recognition")
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
            except failures.UNAVAILABLE as exc:
                await self._cassandra_failed(context, operation, exc, store.read_consistency)
        # Someone else's record is answered exactly like a missing one: ids reveal nothing.
        if record is None or not principal.may_read(record.user):
            await self._fail(
                context, operation, "not_found", grpc.StatusCode.NOT_FOUND, f"no recognition with id {record_id}",
                "RECOGNITION_NOT_FOUND",
            )
        if include_image and len(record.image or b"") != record.image_size:
            await self._image_missing(context, operation, record)
        return record

    async def _image_missing(self, context, operation: str, record: Record) -> NoReturn:  # type: ignore[no-untyped-def]
        retention = timedelta(days=self._config.image_retention_days)
        # Written at receipt with the retention as TTL (minutes of clock skew allowed for).
        if (
            not record.image
            and retention
            and datetime.now(timezone.utc) >= record.received_at + retention - timedelta(minutes=5)
        ):
            await self._fail(
                context, operation, "image_expired", grpc.StatusCode.NOT_FOUND,
                f"the image of {record.id} was deleted after the {retention.days}-day retention period", "IMAGE_EXPIRED",
            )  # fmt: skip
        # Cannot happen with quorum reads and writes (the image is written first); say so loudly if it does.
        await self._fail(
            context, operation, "data_loss", grpc.StatusCode.DATA_LOSS,
            f"the image of {record.id} has {len(record.image or b'')} of its {record.image_size} bytes", "IMAGE_INCOMPLETE",
        )  # fmt: skip

"""From a ``RecordRequest`` to the ``Record`` to store: the checks Record and RecordBatch share.

A request is checked on its own (its fields, whose record it is, its idempotency key); one that
fails raises ``Refused``, which Record turns into its call's status and RecordBatch into that
request's result, leaving the others of the call to be stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import grpc

from digits.v1 import recorder_pb2
from services.recorder.access import Principal
from services.recorder.ids import record_id, to_millis
from services.recorder.records import Claim, Record
from services.recorder.requests import fingerprint, invalid_record
from services.recorder.store import RecognitionStore


class Refused(Exception):
    """A request the recorder will not store, for a reason that is the caller's to fix."""

    def __init__(self, code: grpc.StatusCode, reason: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.kind, self.message = code, reason, kind, message

    def to_proto(self) -> recorder_pb2.RecordError:
        return recorder_pb2.RecordError(reason=self.reason, message=self.message)


@dataclass(frozen=True)
class Prepared:
    """A record ready to store, and whether an earlier call with its idempotency key made it."""

    record: Record
    replayed: bool


async def prepare(
    request: recorder_pb2.RecordRequest,
    principal: Principal | None,
    store: RecognitionStore,
    max_image_bytes: int,
    deadline: float,
) -> Prepared:
    """The record ``request`` asks to store, or ``Refused``; Cassandra's failures (claiming the
    idempotency key) propagate as they are."""
    now = datetime.now(timezone.utc)
    if problem := invalid_record(request, max_image_bytes, now):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RECORD", "invalid_argument", problem)
    rec = request.recognition
    user = _owner(rec.user, principal)
    received_at = to_millis(rec.received_at.ToDatetime(tzinfo=timezone.utc) if rec.HasField("received_at") else now)
    request_id = uuid.UUID(request.request_id) if request.request_id else None
    replayed = False
    if request.idempotency_key:
        candidate = Claim(request_id or uuid.uuid4(), received_at, fingerprint(user, rec.image), first=True)
        claim = await store.claim(request.idempotency_key, candidate, deadline)
        if claim.fingerprint != candidate.fingerprint:
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED", "idempotency_key_reused",
                "this Idempotency-Key was used before for another upload; use a new key for a new upload",
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
        user=user,
        image=rec.image,
        content_type=rec.content_type,
        filename=rec.filename,
        image_size=len(rec.image),
        client_address=rec.client_address,
        received_at=received_at,
        number=rec.number,
        readings=tuple((r.digit, r.confidence, r.box.x, r.box.y, r.box.width, r.box.height) for r in rec.digits),
    )
    return Prepared(record, replayed)


def _owner(named: str, principal: Principal | None) -> str:
    """Whose record it is: the token's user. Naming another user takes that user's token (or
    an admin's), so no one can put records in someone else's history."""
    if principal is None:
        if named:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED", "unauthenticated",
                "recording under a user needs a bearer token",
            )  # fmt: skip
        return ""
    if principal.admin:
        return named
    if named and named != principal.user:
        raise Refused(
            grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN", "forbidden",
            f"this token does not allow recording under user {named!r}",
        )  # fmt: skip
    return principal.user

"""What a Record request must satisfy before anything is written, and what makes two uploads one."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

from digits.v1 import recorder_pb2

# Longest accepted text fields: enough for any real value, small enough to bound a row.
MAX_USER = 128
MAX_FILENAME = 255
MAX_CONTENT_TYPE = 127
MAX_MODEL_VERSION = 64
# How far in the future a client's received_at may be (clock skew between machines).
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_IDEMPOTENCY_KEY = 128


def invalid_record(request: recorder_pb2.RecordRequest, max_image_bytes: int, now: datetime) -> str | None:
    """Why a Record request cannot be stored, or None."""
    rec = request.recognition
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
    key = request.idempotency_key
    if key and (len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable()):
        return f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
    if request.request_id:
        try:
            uuid.UUID(request.request_id)
        except ValueError:
            return "request_id must be a UUID"
        if not rec.HasField("received_at"):
            return "recognition.received_at is required with request_id: the record id is derived from both"
    if rec.HasField("received_at"):
        received_at = rec.received_at.ToDatetime(tzinfo=timezone.utc)
        if received_at.year < 2000 or received_at > now + MAX_CLOCK_SKEW:
            return f"recognition.received_at {received_at.isoformat()} is not a plausible upload time"
    return None


def fingerprint(rec: recorder_pb2.Recognition) -> bytes:
    """What makes two uploads the same upload: who sent it and the exact bytes."""
    return hashlib.sha256(rec.user.encode() + b"\0" + rec.image).digest()

"""What requests must satisfy before anything is read or written, and what makes two uploads one."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

from digits.v1 import recorder_pb2
from services.recorder import paging
from services.recorder.ids import to_millis

# Longest accepted text fields: enough for any real value, small enough to bound a row.
MAX_USER = 128
MAX_FILENAME = 255
MAX_CONTENT_TYPE = 127
MAX_MODEL_VERSION = 64
# How far in the future a client's received_at may be (clock skew between machines).
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_IDEMPOTENCY_KEY = 128
MAX_DIGITS = 12  # the recognizer reads at most this many digits in one image
DEFAULT_PAGE_SIZE = 50  # ListRecognitions, when page_size is 0


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
    if len(rec.digits) > MAX_DIGITS or len(rec.number) > MAX_DIGITS or any(c not in "0123456789" for c in rec.number):
        return f"recognition.number must be at most {MAX_DIGITS} digits 0-9, and recognition.digits as many"
    if rec.number and (len(rec.digits) != len(rec.number) or any(str(d.digit) != n for d, n in zip(rec.digits, rec.number))):
        return "recognition.digits must be the digits of recognition.number, in order"
    if any(not 0.0 <= d.confidence <= 1.0 for d in rec.digits):
        return "recognition.digits[].confidence must be within [0, 1]"
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


def fingerprint(user: str, image: bytes) -> bytes:
    """What makes two uploads the same upload: whose it is and the exact bytes."""
    return hashlib.sha256(user.encode() + b"\0" + image).digest()


def invalid_user(user: str) -> str | None:
    """Why ``user`` cannot name a user (of a token, or a history), or None."""
    if not user or len(user) > MAX_USER or not user.isprintable():
        return f"user must be printable text of 1 to {MAX_USER} characters"
    return None


def list_query(
    request: recorder_pb2.ListRecognitionsRequest, token_key: bytes, max_page_size: int, max_window_days: int
) -> tuple[paging.Query, paging.Cursor | None]:
    """The query of a ListRecognitions request (its filter set) and where to continue it.

    ValueError (paging.BadToken for the token) says what is wrong with the request.
    """
    if not 0 <= request.page_size <= max_page_size:
        raise ValueError(f"page_size must be within 1..{max_page_size} (0 means {DEFAULT_PAGE_SIZE})")
    kind = request.WhichOneof("filter")
    if kind == "user" and (problem := invalid_user(request.user)):
        raise ValueError(problem + " (anonymous uploads are only listed by time window)")
    limit = timedelta(days=max_window_days)
    if request.page_token:
        query, cursor = paging.decode(request.page_token, token_key)  # BadToken is a ValueError
        if not _same_query(request, query):
            raise paging.BadToken("page_token belongs to another query; start again without it")
        if isinstance(query, paging.WindowQuery):
            # Signed, and checked again all the same: a key that leaked, or limits lowered
            # since the token was issued, must not open a longer walk.
            _check_window(query.since, query.until, limit)
            if not paging.day_of(query.since) <= cursor.bucket <= paging.day_of(query.until):
                raise paging.BadToken("page_token points outside its window")
        return query, cursor
    if kind == "user":
        return paging.UserQuery(request.user), None
    window = request.window
    now = datetime.now(timezone.utc)
    until = to_millis(window.until.ToDatetime(tzinfo=timezone.utc) if window.HasField("until") else now)
    since = (
        to_millis(window.since.ToDatetime(tzinfo=timezone.utc))
        if window.HasField("since")
        else until - timedelta(days=1)
    )
    _check_window(since, until, limit)
    return paging.WindowQuery(since, until), None


def _check_window(since: datetime, until: datetime, limit: timedelta) -> None:
    if since > until:
        raise ValueError("window.since is after window.until")
    if until - since > limit:
        raise ValueError(f"the window is longer than {limit.days} days; page through shorter ones")


def _same_query(request: recorder_pb2.ListRecognitionsRequest, query: paging.Query) -> bool:
    if isinstance(query, paging.UserQuery):
        return request.WhichOneof("filter") == "user" and request.user == query.user
    if request.WhichOneof("filter") != "window":
        return False
    # Unset bounds take the token's (defaults were resolved on the first page).
    w = request.window
    return (
        not w.HasField("since") or to_millis(w.since.ToDatetime(tzinfo=timezone.utc)) == query.since
    ) and (not w.HasField("until") or to_millis(w.until.ToDatetime(tzinfo=timezone.utc)) == query.until)

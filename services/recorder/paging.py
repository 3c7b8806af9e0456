"""Opaque page tokens for ListRecognitions, and the time buckets that partition the listings.

A token records the query it belongs to (the user, or the resolved time window) and where the
previous page stopped: a UTC day and the last id returned from it. Rows are ordered by id,
newest first, so the next page reads ``id < last`` in that day and then the older days: every
record is returned exactly once, in order, even while new records arrive (newer ones land
before the cursor and are not seen by this listing). A day of the time log is several
partitions (hours and shards, see ``schema.py``), but the last id says which hour it is in, so
(day, last id) is still enough to resume.

Tokens issued before user histories moved from month to day buckets name a month: they are
still accepted and resume at the day of their last id (or the month's last day).

Tokens are base64url JSON signed with an HMAC (the recorder's page-token key): a client
cannot make one up, so it cannot point a listing at a window of its own choosing (a crafted
window could make the recorder walk millions of empty days). Every field is still validated
when decoded, and the server re-checks the window's limits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from services.recorder.ids import id_time

MAX_TOKEN_CHARS = 512
_SIGNATURE_BYTES = 16  # 128 bits of HMAC-SHA256: forging is out of reach, tokens stay short


class BadToken(ValueError):
    """A page token that is malformed or belongs to another query."""


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def day_of(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


def hour_of(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC hour (the time log's bucket)."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def last_day_of_month(month: date) -> date:
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def days_back(newest: date, oldest: date) -> list[date]:
    """``newest``, the day before, ... down to ``oldest`` inclusive."""
    return [newest - timedelta(days=i) for i in range((newest - oldest).days + 1)]


@dataclass(frozen=True)
class Cursor:
    """Where a page stopped: continue on day ``bucket`` below ``after`` (None: from its newest row)."""

    bucket: date
    after: uuid.UUID | None = None


@dataclass(frozen=True)
class UserQuery:
    user: str


@dataclass(frozen=True)
class WindowQuery:
    """[since, until), at millisecond precision."""

    since: datetime
    until: datetime


Query = UserQuery | WindowQuery


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _from_millis(value: object) -> datetime:
    if not isinstance(value, int):
        raise BadToken("page_token is malformed")
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise BadToken("page_token is malformed") from None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode(query: Query, cursor: Cursor, key: bytes) -> str:
    body: dict[str, object] = {}
    if cursor.after is not None:
        body["a"] = str(cursor.after)
    if isinstance(query, UserQuery):
        # "d", not "b": tokens of older versions hold a month in "b".
        body["u"], body["d"] = query.user, cursor.bucket.isoformat()
    else:
        body["b"] = cursor.bucket.isoformat()
        body["s"], body["e"] = _millis(query.since), _millis(query.until)
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_signature(key, payload))}"


def decode(token: str, key: bytes) -> tuple[Query, Cursor]:
    if len(token) > MAX_TOKEN_CHARS:
        raise BadToken("page_token is too long")
    payload, _, signature = token.partition(".")
    try:
        signed = hmac.compare_digest(_unb64(signature), _signature(key, payload))
    except (binascii.Error, ValueError):
        signed = False
    if not signed:
        raise BadToken("page_token is not one this service issued (or it was issued with another key)")
    try:
        body = json.loads(_unb64(payload))
        if not isinstance(body, dict):
            raise BadToken("page_token is malformed")
        bucket = date.fromisoformat(body["d"] if "d" in body else body["b"])
        after = uuid.UUID(body["a"]) if "a" in body else None
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadToken("page_token is malformed") from None
    if after is not None and after.version != 1:
        raise BadToken("page_token is malformed")
    query: Query
    if isinstance(body.get("u"), str):
        query = UserQuery(body["u"])
        if "d" not in body:  # an older version's token: a month bucket
            bucket = day_of(id_time(after)) if after is not None else last_day_of_month(bucket)
    elif "s" in body and "e" in body:
        query = WindowQuery(_from_millis(body["s"]), _from_millis(body["e"]))
    else:
        raise BadToken("page_token is malformed")
    return query, Cursor(bucket, after)

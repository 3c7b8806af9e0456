"""Opaque page tokens for ListRecognitions, and the time buckets that partition the listings.

A token records the query it belongs to (the user, or the resolved time window) and where the
previous page stopped: a bucket (month or day) and the last id returned from it. Rows are
ordered by id, newest first, so the next page reads ``id < last`` in that bucket and then the
older buckets: every record is returned exactly once, in order, even while new records arrive
(newer ones land before the cursor and are not seen by this listing).

Tokens are base64url JSON, not signed: they only point into data the caller may read anyway,
and every field is validated when decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

MAX_TOKEN_CHARS = 512


class BadToken(ValueError):
    """A page token that is malformed or belongs to another query."""


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def day_of(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


def days_back(newest: date, oldest: date) -> list[date]:
    """``newest``, the day before, ... down to ``oldest`` inclusive."""
    return [newest - timedelta(days=i) for i in range((newest - oldest).days + 1)]


@dataclass(frozen=True)
class Cursor:
    """Where a page stopped: continue in ``bucket`` below ``after`` (None: from its newest row)."""

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


def encode(query: Query, cursor: Cursor) -> str:
    body: dict[str, object] = {"b": cursor.bucket.isoformat()}
    if cursor.after is not None:
        body["a"] = str(cursor.after)
    if isinstance(query, UserQuery):
        body["u"] = query.user
    else:
        body["s"], body["e"] = _millis(query.since), _millis(query.until)
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> tuple[Query, Cursor]:
    if len(token) > MAX_TOKEN_CHARS:
        raise BadToken("page_token is too long")
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(body, dict):
            raise BadToken("page_token is malformed")
        bucket = date.fromisoformat(body["b"])
        after = uuid.UUID(body["a"]) if "a" in body else None
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadToken("page_token is malformed") from None
    if after is not None and after.version != 1:
        raise BadToken("page_token is malformed")
    query: Query
    if isinstance(body.get("u"), str):
        query = UserQuery(body["u"])
    elif "s" in body and "e" in body:
        query = WindowQuery(_from_millis(body["s"]), _from_millis(body["e"]))
    else:
        raise BadToken("page_token is malformed")
    return query, Cursor(bucket, after)

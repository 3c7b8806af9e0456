"""What the HTTP API accepts: query parameters, upload forms and headers, parsed and checked.

Each parser raises ``Problem`` naming what is wrong, so handlers only see valid values.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import Request
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.datastructures import UploadFile

from digits.v1 import recorder_pb2
from services.gateway.config import Config
from services.gateway.problems import Problem

MAX_USER = 128
MAX_IDEMPOTENCY_KEY = 128


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# The window's bounds must be instants a Timestamp (and Cassandra) can hold.
_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)


def _parse_time(name: str, value: str) -> datetime:
    example = "an ISO 8601 time such as 2026-01-31T12:00:00Z"
    try:
        moment = datetime.fromisoformat(value)
        # A time without an offset is taken as UTC, the clock every record is kept in.
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        in_range = _EARLIEST <= moment.astimezone(timezone.utc) < _LATEST
    except (ValueError, OverflowError):
        raise Problem("invalid-request", f"`{name}` must be {example}, not {value!r}") from None
    if not in_range:
        raise Problem("invalid-request", f"`{name}` must be between 1970 and 9999, not {value!r}")
    return moment


def list_request(
    config: Config,
    user: str | None,
    since: str | None,
    until: str | None,
    limit: str | None,
    page_token: str | None,
) -> recorder_pb2.ListRecognitionsRequest:
    """The recorder request for GET /v1/recognitions; Problem(invalid-request) says what is wrong."""
    size = config.default_page_size
    if limit is not None:
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= config.max_page_size:
            raise Problem(
                "invalid-request", f"`limit` must be a whole number from 1 to {config.max_page_size}"
            )
        size = int(limit)
    if page_token is not None and not 0 < len(page_token) <= 512:
        raise Problem("invalid-page-token", "`page_token` must be a token from a previous page")
    common = {"page_size": size, "page_token": page_token or ""}
    if user is not None:
        if since is not None or until is not None:
            raise Problem(
                "invalid-request", "give either `user` or a time window (`since`/`until`), not both"
            )
        # U+FFFD stands where the query string held bytes that are not UTF-8.
        if not user or len(user) > MAX_USER or not user.isprintable() or "\ufffd" in user:
            raise Problem(
                "invalid-request", f"`user` must be printable UTF-8 text of 1 to {MAX_USER} characters"
            )
        return recorder_pb2.ListRecognitionsRequest(user=user, **common)
    if since is None and until is None:
        # No filter: the recorder lists the token's own history (an admin's: the last day).
        return recorder_pb2.ListRecognitionsRequest(**common)
    window = recorder_pb2.TimeWindow()
    if since is not None:
        window.since.CopyFrom(timestamp(_parse_time("since", since)))
    if until is not None:
        window.until.CopyFrom(timestamp(_parse_time("until", until)))
    return recorder_pb2.ListRecognitionsRequest(window=window, **common)


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "")
    if "idempotency-key" in request.headers and not (
        0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isascii() and key.isprintable()
    ):
        raise Problem(
            "invalid-request",
            f"`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
        )
    return key


async def read_upload(request: Request) -> tuple[UploadFile, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise Problem(
            "unsupported-media-type",
            f"send multipart/form-data with an `image` file field, not {content_type[:100] or 'no content type'}",
        )
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=4096)
    except Exception as exc:  # the multipart parser's own errors: malformed body
        raise Problem("malformed-form", f"the multipart body could not be parsed: {str(exc)[:200]}") from None
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise Problem("missing-image", "the form has no `image` file field")
    user = form.get("user", "")
    if not isinstance(user, str) or len(user) > MAX_USER or not user.isprintable():
        raise Problem("invalid-user", f"`user` must be printable text of at most {MAX_USER} characters")
    return image, user

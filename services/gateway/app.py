"""The HTTP API: upload an image, get the digit; read stored recognitions back."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import grpc
from fastapi import FastAPI, Query, Request
from google.protobuf.timestamp_pb2 import Timestamp
from fastapi.responses import FileResponse, Response
from prometheus_client import Counter, Histogram
from starlette.datastructures import UploadFile

from digits.trailers import REPLAYED as REPLAYED_TRAILER
from digits.v1 import recognizer_pb2, recorder_pb2
from services.gateway import problems
from services.gateway.backends import Backends, to_problem
from services.gateway.config import Config
from services.gateway.limits import BodySizeLimit
from services.gateway.models import Recognition, RecognitionPage
from services.gateway.problems import Problem
from services.gateway.request_id import RequestId

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_USER = 128
MAX_IDEMPOTENCY_KEY = 128

HTTP_SECONDS = Histogram(
    "digits_gateway_request_seconds",
    "HTTP request handling time, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_ERRORS = Counter(
    "digits_gateway_upstream_errors_total", "Failed calls to a dependency, by dependency and gRPC code.",
    ["dependency", "code"],
)  # fmt: skip

_UPLOAD_SCHEMA = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Any string of 1-128 printable ASCII characters that you choose per upload (a UUID "
            "is a good choice). Retrying with the same key, user and image returns the first attempt's record "
            "(status 200, header `Idempotent-Replayed: true`) instead of storing a second one, even when the "
            "first attempt timed out after its write; the same key with another image or user is refused "
            "(422 idempotency-key-reused). Keys are remembered for a day.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "additionalProperties": False,
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "The image file."},
                        "user": {"type": "string", "maxLength": MAX_USER, "description": "Who uploads it."},
                    },
                }
            }
        },
    }
}


async def _call(dependency: str, rpc, request, timeout: float, trailers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """One call; its failure as a Problem. ``trailers``, if given, receives the call's trailers."""
    try:
        call = rpc(request, timeout=timeout)
        reply = await call
        if trailers is not None:
            trailers.update(await call.trailing_metadata() or ())
        return reply
    except grpc.aio.AioRpcError as exc:
        UPSTREAM_ERRORS.labels(dependency, exc.code().name).inc()
        raise to_problem(exc, dependency) from None


def _timestamp(moment: datetime) -> Timestamp:
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


def _list_request(
    config: Config, user: str | None, since: str | None, until: str | None, limit: str | None, page_token: str | None
) -> recorder_pb2.ListRecognitionsRequest:
    """The recorder request for GET /v1/recognitions; Problem(invalid-request) says what is wrong."""
    size = config.default_page_size
    if limit is not None:
        if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= config.max_page_size:
            raise Problem("invalid-request", f"`limit` must be a whole number from 1 to {config.max_page_size}")
        size = int(limit)
    if page_token is not None and not 0 < len(page_token) <= 512:
        raise Problem("invalid-page-token", "`page_token` must be a token from a previous page")
    common = {"page_size": size, "page_token": page_token or ""}
    if user is not None:
        if since is not None or until is not None:
            raise Problem("invalid-request", "give either `user` or a time window (`since`/`until`), not both")
        # U+FFFD stands where the query string held bytes that are not UTF-8.
        if not user or len(user) > MAX_USER or not user.isprintable() or "\ufffd" in user:
            raise Problem("invalid-request", f"`user` must be printable UTF-8 text of 1 to {MAX_USER} characters")
        return recorder_pb2.ListRecognitionsRequest(user=user, **common)
    window = recorder_pb2.TimeWindow()
    if since is not None:
        window.since.CopyFrom(_timestamp(_parse_time("since", since)))
    if until is not None:
        window.until.CopyFrom(_timestamp(_parse_time("until", until)))
    return recorder_pb2.ListRecognitionsRequest(window=window, **common)


# The formats the recognizer accepts, by their first bytes.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_image_type(data: bytes) -> str:
    """The media type of stored bytes, from their signature; octet-stream when unknown."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    return "application/octet-stream"


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "")
    if "idempotency-key" in request.headers and not (
        0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isascii() and key.isprintable()
    ):
        raise Problem("invalid-request", f"`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return key


async def _read_upload(request: Request) -> tuple[UploadFile, str]:
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


def create_app(config: Config) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # gRPC channels belong to the event loop they are made on: uvicorn's, so made here.
        app.state.backends = Backends(config)
        yield
        await app.state.backends.close()

    app = FastAPI(
        title="digits",
        summary="Recognises handwritten digits and keeps every request.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    problems.install(app)

    @app.middleware("http")
    async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        status = "500"  # unless a response comes back: an exception escaped to the 500 handler
        try:
            response = await call_next(request)
            status = str(response.status_code)
            return response
        finally:
            route = request.scope.get("route")
            HTTP_SECONDS.labels(getattr(route, "path", "unmatched"), request.method, status).observe(
                time.perf_counter() - start
            )

    # Outermost (added last): every response, even the body limit's 413, carries the id.
    app.add_middleware(RequestId)

    @app.post(
        "/v1/recognitions",
        status_code=201,
        response_model=Recognition,
        responses=problems.responses(400, 413, 415, 422, 502, 503),
        openapi_extra=_UPLOAD_SCHEMA,
        summary="Recognise the digit in an image and record it",
    )
    async def create_recognition(request: Request, response: Response) -> Recognition:
        backends: Backends = request.app.state.backends
        key = _idempotency_key(request)
        # The moment of receipt is part of the record's identity (with request_id): it must
        # not change between attempts of the same Record call.
        received_at = datetime.now(timezone.utc)
        upload, user = await _read_upload(request)
        image = await upload.read()
        # One id per upload, so that a retried Record call cannot store it twice.
        request_id = str(uuid.uuid4())
        answer = await _call(
            "recognizer",
            backends.recognizer.Recognize,
            recognizer_pb2.RecognizeRequest(image=image, content_type=upload.content_type or ""),
            config.recognize_timeout_seconds,
        )
        trailers: dict[str, str] = {}
        stored = await _call(
            "recorder",
            backends.recorder.Record,
            recorder_pb2.RecordRequest(
                request_id=request_id,
                recognition=recorder_pb2.Recognition(
                    digit=answer.digit,
                    confidence=answer.confidence,
                    probabilities=answer.probabilities,
                    model_version=answer.model_version,
                    user=user,
                    image=image,
                    content_type=(upload.content_type or "")[:127],
                    filename=(upload.filename or "")[:255],
                    client_address=request.client.host if request.client else "",
                    received_at=_timestamp(received_at),
                ),
                idempotency_key=key,
            ),
            config.record_timeout_seconds,
            trailers,
        )
        if trailers.get(REPLAYED_TRAILER) == "true":
            # The same Idempotency-Key, user and image as an earlier upload: its record.
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        log.info("recognised", extra={"id": stored.id, "digit": stored.digit, "user": user, "replayed": response.status_code == 200})  # noqa: E501
        return Recognition.from_proto(stored)

    @app.get(
        "/v1/recognitions",
        response_model=RecognitionPage,
        responses=problems.responses(400, 502, 503),
        summary="Stored recognitions, newest first: one user's history, or a time window",
        description="With `user`: that user's history. Otherwise everything received in "
        "[`since`, `until`) (default: the last 24 hours; at most 31 days). Follow `next_page_token` "
        "for more; items carry no image bytes (see `image_url`).",
    )
    async def list_recognitions(
        request: Request,
        user: str | None = Query(None, max_length=MAX_USER, description="Whose history; anonymous uploads have none."),
        since: str | None = Query(None, max_length=64, json_schema_extra={"format": "date-time"},
                                  description="ISO 8601, inclusive; default `until` minus 24 hours."),
        until: str | None = Query(None, max_length=64, json_schema_extra={"format": "date-time"},
                                  description="ISO 8601, exclusive; default now."),
        limit: str | None = Query(None, pattern=r"^[0-9]{1,4}$", description=f"Items per page, 1 to {config.max_page_size}."),
        page_token: str | None = Query(None, max_length=512, description="`next_page_token` of the previous page."),
    ) -> RecognitionPage:
        reply = await _call(
            "recorder",
            request.app.state.backends.recorder.ListRecognitions,
            _list_request(config, user, since, until, limit, page_token),
            config.read_timeout_seconds,
        )
        return RecognitionPage.from_proto(reply)

    @app.get(
        "/v1/recognitions/{recognition_id}",
        response_model=Recognition,
        responses=problems.responses(400, 404, 502, 503),
        summary="A stored recognition",
    )
    async def get_recognition(recognition_id: uuid.UUID, request: Request) -> Recognition:
        stored = await _call(
            "recorder",
            request.app.state.backends.recorder.GetRecognition,
            recorder_pb2.GetRecognitionRequest(id=str(recognition_id)),
            config.read_timeout_seconds,
        )
        return Recognition.from_proto(stored)

    @app.get(
        "/v1/recognitions/{recognition_id}/image",
        responses={200: {"content": {"image/*": {}}}, **problems.responses(400, 404, 502, 503)},
        response_class=Response,
        summary="The stored image, byte for byte",
    )
    async def get_image(recognition_id: uuid.UUID, request: Request) -> Response:
        image = await _call(
            "recorder",
            request.app.state.backends.recorder.GetImage,
            recorder_pb2.GetImageRequest(id=str(recognition_id)),
            config.read_timeout_seconds,
        )
        # The bytes came from a stranger: their type is what they are, not what the uploader
        # claimed (an "image/svg+xml" PNG, say), browsers may not sniff them into something
        # else, and nothing in them may run or load anything.
        return Response(
            image.data,
            media_type=sniff_image_type(image.data),
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"},
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, object]:
        # Ready means this process can serve, which it can once the app has started: a down
        # recognizer or recorder is answered per request (503), not by taking every gateway,
        # and with it the web page, out of service. The channels' states are for people, and
        # cost no call.
        return {"status": "ready", "dependencies": request.app.state.backends.states()}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app

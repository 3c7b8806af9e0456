"""The HTTP API: upload an image, get the digit; read stored recognitions back."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.datastructures import UploadFile

from digits.v1 import recognizer_pb2, recorder_pb2
from services.gateway.backends import ApiError, Backends, to_api_error
from services.gateway.config import Config
from services.gateway.limits import BodySizeLimit
from services.gateway.models import Error, Recognition

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_USER = 128

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

_ERROR_RESPONSES = {
    status: {"model": Error, "description": text}
    for status, text in {
        400: "A field is missing or invalid.",
        404: "No recognition has that id.",
        413: "The upload is larger than the limit.",
        415: "Not multipart/form-data, or the file is not an image.",
        422: "The image is empty, corrupt, or shows no digit.",
        503: "A dependency is down or too slow; retry later.",
    }.items()
}

_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "The image file."},
                        "user": {"type": "string", "maxLength": MAX_USER, "description": "Who uploads it."},
                    },
                }
            }
        },
    }
}


async def _call(dependency: str, rpc, request, timeout: float):  # type: ignore[no-untyped-def]
    try:
        return await rpc(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        UPSTREAM_ERRORS.labels(dependency, exc.code().name).inc()
        raise to_api_error(exc, dependency) from None


async def _read_upload(request: Request) -> tuple[UploadFile, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"send multipart/form-data with an `image` file field, not {content_type or 'no content type'}",
        )
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=4096)
    except Exception as exc:  # the multipart parser's own errors: malformed body
        raise ApiError(400, "MALFORMED_FORM", f"the multipart body could not be parsed: {exc}") from None
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise ApiError(400, "MISSING_IMAGE", "the form has no `image` file field")
    user = form.get("user", "")
    if not isinstance(user, str) or len(user) > MAX_USER or not user.isprintable():
        raise ApiError(400, "INVALID_USER", f"`user` must be printable text of at most {MAX_USER} characters")
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

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse({"detail": exc.detail, "reason": exc.reason}, status_code=exc.status, headers=headers)

    @app.middleware("http")
    async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        HTTP_SECONDS.labels(
            getattr(route, "path", "unmatched"), request.method, str(response.status_code)
        ).observe(time.perf_counter() - start)
        return response

    @app.post(
        "/v1/recognitions",
        status_code=201,
        response_model=Recognition,
        responses=_ERROR_RESPONSES,
        openapi_extra=_UPLOAD_SCHEMA,
        summary="Recognise the digit in an image and record it",
    )
    async def create_recognition(request: Request) -> Recognition:
        backends: Backends = request.app.state.backends
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
                ),
            ),
            config.record_timeout_seconds,
        )
        log.info("recognised", extra={"id": stored.id, "digit": stored.digit, "user": user})
        return Recognition.from_proto(stored)

    @app.get(
        "/v1/recognitions/{recognition_id}",
        response_model=Recognition,
        responses=_ERROR_RESPONSES,
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
        responses={200: {"content": {"image/*": {}}}, **_ERROR_RESPONSES},
        response_class=Response,
        summary="The stored image, byte for byte",
    )
    async def get_image(recognition_id: uuid.UUID, request: Request) -> Response:
        stored = await _call(
            "recorder",
            request.app.state.backends.recorder.GetRecognition,
            recorder_pb2.GetRecognitionRequest(id=str(recognition_id), include_image=True),
            config.read_timeout_seconds,
        )
        # Never let a browser sniff stored bytes into HTML: they came from a stranger.
        media_type = stored.content_type if stored.content_type.startswith("image/") else "application/octet-stream"
        return Response(stored.image, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        ready = await request.app.state.backends.readiness()
        return JSONResponse({"dependencies": ready}, status_code=200 if all(ready.values()) else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app

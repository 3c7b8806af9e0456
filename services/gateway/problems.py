"""One error contract for the HTTP API: RFC 9457 problem details, whatever the cause.

Every non-2xx answer is ``application/problem+json``::

    {"type": "/problems/not-an-image", "title": "The file is not an image", "status": 415,
     "detail": "the bytes are not a PNG, JPEG, GIF, BMP, TIFF or WebP image",
     "instance": "/v1/recognitions", "request_id": "6f1c..."}

``type`` is stable per cause and resolves (relative to the API's address) to a page that
describes it; ``title`` goes with the type; ``detail`` is about this occurrence; ``request_id``
is also the ``X-Request-ID`` header, and the logs carry it. Our handlers raise ``Problem``;
validation errors, unknown routes, wrong methods and unexpected exceptions are turned into
problems here too, so no other error shape ever leaves the gateway.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    status: int
    title: str
    description: str


# Every cause a client can meet, by slug. The slugs are part of the API: never renamed.
TYPES: dict[str, ProblemType] = {
    "invalid-request": ProblemType(400, "The request is invalid", "A query or path parameter, or a form field, is missing or has a value it cannot take. `detail` names it; `errors` lists each problem."),  # noqa: E501
    "malformed-form": ProblemType(400, "The multipart body could not be parsed", "The body claims to be multipart/form-data but is not well formed."),  # noqa: E501
    "missing-image": ProblemType(400, "The form has no image", "Send the image as a file field named `image`."),
    "invalid-user": ProblemType(400, "The user name is invalid", "`user` must be printable text of at most 128 characters."),  # noqa: E501
    "invalid-page-token": ProblemType(400, "The page token is not valid", "Pass back `next_page_token` exactly as received, with the same query. Tokens are signed and cannot be made up or altered."),  # noqa: E501
    "authentication-required": ProblemType(401, "A bearer token is required", "Send `Authorization: Bearer <token>`: a user token for that user's records, the admin token for everything. Uploads need none."),  # noqa: E501
    "invalid-token": ProblemType(401, "The bearer token is not valid", "The token is malformed, unknown or revoked. Ask an admin for a new one."),  # noqa: E501
    "forbidden": ProblemType(403, "This token may not do that", "Time-window listings and tokens are an admin's; a user token reads and records only its own user's recognitions."),  # noqa: E501
    "not-found": ProblemType(404, "There is nothing at this address", "No route of the API matches the path."),
    "recognition-not-found": ProblemType(404, "No recognition has that id", "It never existed, it was deleted, or it is not yours: another user's recognition is answered exactly like a missing one."),  # noqa: E501
    "token-not-found": ProblemType(404, "No token has that id", "It never existed, or it was revoked."),
    "method-not-allowed": ProblemType(405, "The method is not allowed here", "The path exists; the `Allow` header lists the methods it takes."),  # noqa: E501
    "image-expired": ProblemType(410, "The image is past its retention period", "Images are deleted a set number of days after upload (see the README's retention); the rest of the record is kept."),  # noqa: E501
    "request-too-large": ProblemType(413, "The request body is too large", "The whole body (the image and the form around it) is over the gateway's limit."),  # noqa: E501
    "image-too-large": ProblemType(413, "The image is too large", "Its file or its declared width × height is over the recognizer's limit."),  # noqa: E501
    "unsupported-media-type": ProblemType(415, "Send multipart/form-data", "Uploads are multipart/form-data with the image in a file field named `image`."),  # noqa: E501
    "not-an-image": ProblemType(415, "The file is not an image", "Its bytes are not a PNG, JPEG, GIF, BMP, TIFF or WebP image."),  # noqa: E501
    "empty-image": ProblemType(422, "The image is empty", "The file has no bytes, or the picture is blank."),
    "corrupt-image": ProblemType(422, "The image is damaged", "The file is an image format, but truncated or corrupt."),  # noqa: E501
    "idempotency-key-reused": ProblemType(422, "The Idempotency-Key belongs to another upload", "It was used before with another image or user; each new upload needs a new key."),  # noqa: E501
    "no-digit-found": ProblemType(422, "No digit was found in the image", "Nothing in the picture stands out from the background."),  # noqa: E501
    "not-a-digit": ProblemType(422, "The image does not show a digit", "Something is drawn, but the model judges it is not a digit (a letter, a symbol, a scribble, a texture). Nothing was recorded."),  # noqa: E501
    "invalid-label": ProblemType(422, "The label does not fit the recognition", "A label is the digits the image shows: one digit 0-9, or for a number as many digits as the recognition's `number`."),  # noqa: E501
    "too-many-digits": ProblemType(422, "Too many digits in one image", "At most 12 digits side by side are read in one image; crop it, or upload the parts separately."),  # noqa: E501
    "dependency-failed": ProblemType(502, "A service behind the API failed", "A bug or a misconfiguration behind the gateway; retrying will not help. Quote `request_id` when you report it."),  # noqa: E501
    "dependency-unavailable": ProblemType(503, "Temporarily unavailable", "A service behind the API is down or overloaded. Retry after `Retry-After` seconds; see the README for what a retried upload stores."),  # noqa: E501
    "overloaded": ProblemType(503, "The gateway is at its limit", "It is handling as many requests as it is configured to; retry after `Retry-After` seconds. Nothing was recorded."),  # noqa: E501
    "internal-error": ProblemType(500, "Internal error", "A bug in the gateway. It was logged with `request_id`; nothing about it is shown here."),  # noqa: E501
}


class Problem(Exception):
    """Raise to answer with the problem ``slug``; ``detail`` is for people and must be safe to show."""

    def __init__(self, slug: str, detail: str, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        if slug not in TYPES:
            raise ValueError(f"unknown problem type {slug!r}")
        self.slug = slug
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra

    @property
    def status(self) -> int:
        return TYPES[self.slug].status


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457)."""

    type: str = Field(description="Stable URI reference of the cause; GET it for a description.", examples=["/problems/not-an-image"])  # noqa: E501
    title: str = Field(description="Short summary of the cause (the same for every occurrence).")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, for people.")
    instance: str = Field(description="The path of the request.")
    request_id: str = Field(description="Also the X-Request-ID header and in the gateway's logs.")


def body(slug: str, detail: str, request_id: str, instance: str, **extra: Any) -> dict[str, Any]:
    kind = TYPES[slug]
    return {
        "type": TYPE_PREFIX + slug,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
        **extra,
    }


def encoded(slug: str, detail: str, request_id: str, instance: str) -> bytes:
    """The body as bytes, for ASGI middleware that answers without the app."""
    return json.dumps(body(slug, detail, request_id, instance)).encode()


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "")


def respond(request: Request, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    headers.setdefault("X-Request-ID", request_id_of(request))  # the 500 handler runs outside RequestLog
    if problem.retry_after is not None:
        headers["Retry-After"] = str(problem.retry_after)
    if problem.status == 401:  # RFC 6750 §3: say how to authenticate
        error = ', error="invalid_token"' if problem.slug == "invalid-token" else ""
        headers["WWW-Authenticate"] = f'Bearer realm="digits"{error}'

    content = body(problem.slug, problem.detail, request_id_of(request), request.url.path, **problem.extra)
    return JSONResponse(content, status_code=problem.status, media_type=MEDIA_TYPE, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: each status it can answer, with its problem types."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in (*statuses, 500):
        slugs = [slug for slug, kind in TYPES.items() if kind.status == status]
        out[status] = {
            "model": ProblemDetails,
            "content": {MEDIA_TYPE: {}},
            "description": "; ".join(f"`{TYPE_PREFIX}{slug}`: {TYPES[slug].title}" for slug in slugs),
        }
    return out


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods some route takes on this path: each is tried against the routes, which also
    works for included routers (they expose matching, not their routes' methods)."""
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    ]


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "request"


def _document_problems_only(app: FastAPI) -> None:
    """FastAPI documents a 422 with its own validation-error shape on every route with
    parameters; this API answers those as 400 problems (documented per route), so drop it, and
    document every error body as application/problem+json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    answers = operation.get("responses", {})
                    if "HTTPValidationError" in json.dumps(answers.get("422", {})):
                        del answers["422"]
                    for code, answer in answers.items():
                        content = answer.get("content", {})
                        # FastAPI files `model` under application/json; errors are problem+json.
                        if int(code) >= 400 and "application/json" in content:
                            content[MEDIA_TYPE] = content.pop("application/json")
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Turn every error into a problem, and serve a page per problem type at /problems/<slug>."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"location": _location(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        return respond(request, Problem("invalid-request", detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            problem = Problem("not-found", f"no route matches {request.url.path}")
        elif exc.status_code == 405:
            problem = Problem("method-not-allowed", f"{request.method} is not allowed on {request.url.path}")
            # Starlette names only the first route that matched the path; the path may have more.
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed_methods(app, request))}
        else:  # nothing of ours raises other HTTPExceptions; keep the status, in our shape
            log.warning("unexpected HTTPException", extra={"status": exc.status_code, "detail": str(exc.detail)})
            problem = Problem("internal-error" if exc.status_code >= 500 else "invalid-request", str(exc.detail))
        return respond(request, problem, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error", exc_info=exc,
            extra={"request_id": request_id_of(request), "path": request.url.path, "method": request.method},
        )  # fmt: skip
        return respond(request, Problem("internal-error", "the gateway failed; the error was logged"))

    _document_problems_only(app)

    @app.get(TYPE_PREFIX + "{slug}", include_in_schema=False)
    async def describe(slug: str, request: Request) -> HTMLResponse:
        kind = TYPES.get(slug)
        if kind is None:
            raise Problem("not-found", f"there is no problem type {slug!r}")
        page = (
            f"<!doctype html><meta charset=utf-8><title>{kind.title}</title>"
            f"<h1>{kind.title}</h1><p>HTTP {kind.status}. {kind.description}</p>"
            f"<p>Type: <code>{TYPE_PREFIX}{slug}</code>. All types: see the README.</p>"
        )
        return HTMLResponse(page)

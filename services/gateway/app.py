"""The HTTP API: the app, its middleware, health and the web page; routes live in
``recognitions.py`` and ``tokens.py``."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from services.gateway import labels, problems, recognitions, stats, tokens
from services.gateway.backends import Backends
from services.gateway.coalescing import RecognizeCoalescer, RecordCoalescer
from services.gateway.config import Config
from services.gateway.limits import BodySizeLimit, ConcurrencyLimit, InFlight
from services.gateway.outcomes import UploadOutcomes
from services.gateway.request_log import RequestLog

STATIC = Path(__file__).resolve().parent / "static"
# Third-party assets, vendored from npm (static/vendor/README.md); their paths carry the version.
SWAGGER_UI = "/static/vendor/swagger-ui-dist-5.35.0"
# The web page's own policy: its scripts, styles, images and calls are this origin's only
# (thumbnails are blob: URLs, the model's field a data: PNG).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class CachedStatic(StaticFiles):
    """/static with a caching policy: files under vendor/ have the version in their path and never
    change (cached for a year); the page's own files are revalidated on every use (ETag, 304)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        immutable = scope.get("path", "").startswith("/static/vendor/")
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"

        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"cache-control", cache.encode())]
                message["headers"].append((b"x-content-type-options", b"nosniff"))
            await send(message)

        await super().__call__(scope, receive, send_cached)


def create_app(config: Config) -> FastAPI:
    in_flight = InFlight()  # API requests being handled: counted by the limit, read by the coalescers

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # gRPC channels belong to the event loop they are made on: uvicorn's, so made here.
        app.state.backends = backends = Backends(config)
        # Uploads reach the recognizer and the recorder through these: concurrent ones share calls.
        app.state.recognizer = RecognizeCoalescer(
            backends.recognizer,
            config.recognize_timeout_seconds,
            max_calls=config.recognize_max_calls,
            max_items=config.recognize_max_batch,
            company=in_flight.others,
        )
        app.state.recorder = RecordCoalescer(
            backends.recorder,
            config.record_timeout_seconds,
            max_calls=config.record_max_calls,
            max_items=config.record_max_batch,
            company=in_flight.others,
        )
        yield
        await app.state.backends.close()

    app = FastAPI(
        title="digits",
        summary="Recognises handwritten digits and keeps every request.",
        version="1.0.0",
        lifespan=lifespan,
        # Served below from local assets: FastAPI's own pages load Swagger UI and ReDoc from a CDN,
        # blank inside a cluster without internet. ReDoc is not kept.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(
        ConcurrencyLimit,
        max_requests=config.max_concurrent_requests,
        hold_seconds=config.overload_hold_seconds,
        in_flight=in_flight,
    )
    problems.install(app)
    # Outside the limits, so that their refusals (413, 503) are counted for the dashboard too.
    app.add_middleware(UploadOutcomes)

    # Outermost (added last): every response, even the body limit's 413, carries the id, is
    # logged and is timed.
    app.add_middleware(RequestLog)

    app.include_router(recognitions.router(config))
    app.include_router(tokens.router(config))
    app.include_router(labels.router(config))
    app.include_router(stats.router(config))

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
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": PAGE_CSP,
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="digits: API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            # No validator badge: it would ask validator.swagger.io about the document.
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False},
        )

    app.mount("/static", CachedStatic(directory=STATIC), name="static")

    return app

"""The HTTP API: the app, its middleware, health and the web page; routes live in
``recognitions.py`` and ``tokens.py``."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse

from services.gateway import problems, recognitions, tokens
from services.gateway.backends import Backends
from services.gateway.coalescing import Coalescer
from services.gateway.config import Config
from services.gateway.http_metrics import HttpMetrics
from services.gateway.limits import BodySizeLimit, ConcurrencyLimit
from services.gateway.request_id import RequestId

STATIC = Path(__file__).resolve().parent / "static"


def create_app(config: Config) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # gRPC channels belong to the event loop they are made on: uvicorn's, so made here.
        app.state.backends = backends = Backends(config)
        # Uploads reach the recognizer through it: concurrent ones share calls.
        app.state.recognizer = Coalescer(
            backends.recognizer,
            config.recognize_timeout_seconds,
            max_calls=config.recognize_max_calls,
            max_images=config.recognize_max_batch,
        )
        yield
        await app.state.backends.close()

    app = FastAPI(
        title="digits",
        summary="Recognises handwritten digits and keeps every request.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(
        ConcurrencyLimit, max_requests=config.max_concurrent_requests, hold_seconds=config.overload_hold_seconds
    )
    problems.install(app)

    app.add_middleware(HttpMetrics)
    # Outermost (added last): every response, even the body limit's 413, carries the id.
    app.add_middleware(RequestId)

    app.include_router(recognitions.router(config))
    app.include_router(tokens.router(config))

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

"""One log line per HTTP request, with its id, status, duration and what the handler added,
driven as ASGI with a Starlette app of two routes (no server, no network)."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from services.gateway.request_log import RequestLog, annotate


async def upload(request: Request) -> Response:
    annotate(request, id="rec-1", digit=7)
    return Response(status_code=201)


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


def lines(caplog) -> list[logging.LogRecord]:  # type: ignore[no-untyped-def]
    return [r for r in caplog.records if r.name == "services.gateway.requests"]


def test_each_request_logs_one_line_with_its_id_status_duration_and_the_handlers_fields(caplog) -> None:
    app = RequestLog(Starlette(routes=[Route("/v1/recognitions", upload, methods=["POST"])]))
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        mine = client.post("/v1/recognitions?token=secret", headers={"X-Request-ID": "client-42"})
        theirs = client.post("/v1/recognitions")
        missing = client.get("/nowhere")
    assert (mine.status_code, mine.headers["x-request-id"]) == (201, "client-42")
    logged = lines(caplog)
    assert len(logged) == 3
    first = vars(logged[0])
    assert (first["request_id"], first["method"], first["path"], first["status"]) == ("client-42", "POST", "/v1/recognitions", 201)
    assert (first["id"], first["digit"]) == ("rec-1", 7) and first["ms"] >= 0
    assert "secret" not in str(first)  # no query string: it may hold what is private
    assert vars(logged[1])["request_id"] == theirs.headers["x-request-id"] != "client-42"
    assert (vars(logged[2])["status"], "id" in vars(logged[2])) == (404, False)  # fields are per request
    assert missing.status_code == 404


def test_a_request_that_fails_is_still_logged(caplog) -> None:
    app = RequestLog(Starlette(routes=[Route("/", broken)]))
    with caplog.at_level(logging.INFO), TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 500
    (line,) = lines(caplog)
    assert line.request_id and line.path == "/"  # type: ignore[attr-defined]

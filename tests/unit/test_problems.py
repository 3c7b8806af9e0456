"""The gateway's 500 path, which no client input reaches: a bug must still be a problem without
internals, logged with its traceback. Uses a small fake: the recognizer stub is replaced by a
function that raises (no gRPC service runs in this test)."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.config import Config


def test_an_unexpected_exception_is_a_logged_problem_without_internals(caplog):
    app = create_app(Config(recognizer_address="127.0.0.1:9", recorder_address="127.0.0.1:9"))
    with TestClient(app, raise_server_exceptions=False) as client:

        async def broken(*args, **kwargs):
            raise RuntimeError("secret internals: password=hunter2")

        app.state.backends.recognizer.Recognize = broken  # the fake
        with caplog.at_level(logging.ERROR):
            reply = client.post(
                "/v1/recognitions", files={"image": ("a.png", b"\x89PNG", "image/png")}, headers={"X-Request-ID": "bug-1"}
            )
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["x-request-id"] == "bug-1"
    body = reply.json()
    assert body["type"] == "/problems/internal-error" and body["request_id"] == "bug-1"
    assert "secret" not in reply.text and "RuntimeError" not in reply.text
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert logged and logged[0].exc_info and "secret internals" in str(logged[0].exc_info[1])
    assert logged[0].request_id == "bug-1"


def test_the_readme_lists_every_problem_type():
    from services.gateway.problems import TYPES
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    for slug, kind in TYPES.items():
        assert f"| {kind.status} | `/problems/{slug}` | {kind.title} |" in readme, slug


def test_stored_images_are_typed_by_their_bytes():
    import io

    from PIL import Image

    from services.gateway.images import sniff_image_type

    for fmt, media_type in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("BMP", "image/bmp"),
                            ("TIFF", "image/tiff"), ("WEBP", "image/webp")):  # fmt: skip
        buffer = io.BytesIO()
        Image.new("L", (8, 8)).save(buffer, fmt)
        assert sniff_image_type(buffer.getvalue()) == media_type, fmt
    assert sniff_image_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") == "application/octet-stream"
    assert sniff_image_type(b"") == "application/octet-stream"


def test_openapi_says_uploads_may_be_anonymous_and_everything_else_takes_a_token():
    from services.gateway.app import create_app
    from services.gateway.config import Config

    spec = create_app(Config()).openapi()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            anonymous_allowed = (method, path) == ("post", "/v1/recognitions")
            expected = [{"bearer": []}, {}] if anonymous_allowed else [{"bearer": []}]
            assert operation["security"] == expected, (method, path)


def test_a_call_turned_away_by_a_stopping_server_is_a_503_to_retry():
    import grpc

    from services.gateway.backends import to_problem

    def failed(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)

    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.DEADLINE_EXCEEDED):  # fmt: skip
        problem = to_problem(failed(code), "recorder")
        assert (problem.slug, problem.retry_after) == ("dependency-unavailable", 1), code
    assert to_problem(failed(grpc.StatusCode.INTERNAL), "recorder").slug == "dependency-failed"

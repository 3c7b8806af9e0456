"""One error contract (RFC 9457), through the real stack: whatever raised it, a non-2xx answer
is application/problem+json with a stable type, a title, the status, a detail and the request
id, and the OpenAPI document says which problems each route can answer."""

from __future__ import annotations

import httpx
import pytest

from services.gateway.problems import TYPES
from tests.helpers import DATA


def assert_problem(reply: httpx.Response, status: int, slug: str) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["title"] == TYPES[slug].title
    assert body["status"] == status
    assert body["detail"]
    assert body["request_id"] and body["request_id"] == reply.headers["x-request-id"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "slug"),
    [
        ("GET", "/nowhere", None, 404, "not-found"),
        ("DELETE", "/healthz", None, 405, "method-not-allowed"),
        ("PUT", "/v1/recognitions", None, 405, "method-not-allowed"),
        ("GET", "/v1/recognitions/xyz", None, 400, "invalid-request"),
        # Used to be a text/plain 500 (an OverflowError converting the time to UTC).
        ("GET", "/v1/recognitions", {"since": "0001-01-01T00:00:00+01:00"}, 400, "invalid-request"),
        ("GET", "/v1/recognitions", {"until": "9999-12-31T23:59:59-01:00"}, 400, "invalid-request"),
        ("GET", "/v1/recognitions", {"user": "ada", "page_token": "forged"}, 400, "invalid-page-token"),
        ("GET", "/problems/no-such-type", None, 404, "not-found"),
    ],
    ids=["unknown-route", "method-on-healthz", "method-on-collection", "bad-uuid", "year-1", "year-10000",
         "forged-token", "unknown-problem-type"],
)  # fmt: skip
def test_every_error_is_a_problem(http, method, path, params, status, slug):
    reply = http.request(method, path, params=params)
    body = assert_problem(reply, status, slug)
    assert body["instance"] == path
    if status == 405:
        assert reply.headers["allow"]


def test_validation_problems_list_each_error(http):
    body = assert_problem(http.get("/v1/recognitions/not-a-uuid"), 400, "invalid-request")
    assert body["errors"] and body["errors"][0]["location"] == "path.recognition_id"


def test_the_request_id_is_the_clients_when_sane_and_ours_otherwise(http):
    mine = http.get("/nowhere", headers={"X-Request-ID": "client-42.retry:1"})
    assert mine.headers["x-request-id"] == mine.json()["request_id"] == "client-42.retry:1"
    for hostile in ("x" * 500, "a b", "<script>"):
        theirs = http.get("/nowhere", headers={"X-Request-ID": hostile})
        assert theirs.json()["request_id"] != hostile and len(theirs.json()["request_id"]) == 32
    assert http.get("/healthz").headers["x-request-id"]  # successes carry one too


def test_every_problem_type_has_a_page(http):
    for slug, kind in TYPES.items():
        page = http.get(f"/problems/{slug}")
        assert page.status_code == 200 and kind.title in page.text, slug


def test_openapi_documents_problems_and_nothing_else(http):
    schema = http.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if int(code) >= 400}
            assert errors and "500" in errors, f"{method} {path}"
            for code, response in errors.items():
                assert list(response["content"]) == ["application/problem+json"], f"{method} {path} {code}"
                assert response["content"]["application/problem+json"]["schema"]["$ref"].endswith("/ProblemDetails")
    upload = schema["paths"]["/v1/recognitions"]["post"]["responses"]
    assert {"413", "415", "422", "503"} <= set(upload)
    assert "/problems/not-an-image" in upload["415"]["description"]


def test_a_stored_image_is_served_as_what_it_is_not_as_claimed(http):
    seven = (DATA / "seven.png").read_bytes()
    made = http.post("/v1/recognitions", files={"image": ("x.svg", seven, "image/svg+xml")})
    assert made.status_code == 201, made.text
    image = http.get(made.json()["image_url"])
    assert image.content == seven
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in image.headers["content-security-policy"]


def test_found_by_schemathesis_a_uuid_that_is_not_time_based_is_404_not_502(http):
    for path in ("/v1/recognitions/81f60a4c-34bd-5dc8-8830-82f889a01128", "/v1/recognitions/ee842018-0f76-20e3-837a-aeccfb7d107f/image"):  # noqa: E501
        assert_problem(http.get(path), 404, "recognition-not-found")


def test_found_by_schemathesis_405_lists_every_method_of_the_path(http):
    reply = http.request("OPTIONS", "/v1/recognitions")
    assert_problem(reply, 405, "method-not-allowed")
    assert set(reply.headers["allow"].split(", ")) == {"GET", "POST"}

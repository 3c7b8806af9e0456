"""Parsing the service's answers: pure data in, typed values out (no server, no fakes)."""

from __future__ import annotations

from digits_client import Box, DigitRead, Page, ProblemError, Recognition

TODAY = {
    "id": "41a73c62-e798-11f1-84fb-72c6b730501f", "digit": 7, "confidence": 0.99,
    "probabilities": [0.0] * 7 + [0.99] + [0.0] * 2, "model_version": "002547b12d7d", "user": "",
    "content_type": "image/png", "filename": "seven.png", "image_size": 2008,
    "received_at": "2026-11-23T23:47:34.772000Z", "image_url": "/v1/recognitions/41a7/image",
}  # fmt: skip


def test_todays_answer_has_no_number_and_no_digits():
    r = Recognition.from_json(TODAY)
    assert (r.digit, r.number, r.digits, r.text) == (7, None, (), "7")
    assert r.received_at is not None and r.received_at.utcoffset().total_seconds() == 0
    assert r.image_size == 2008 and len(r.probabilities) == 10


def test_a_multi_digit_answer_and_unknown_fields_are_taken():
    data = {
        **TODAY, "number": "42", "some_future_field": {"x": 1},
        "digits": [{"digit": 4, "confidence": 0.9, "box": {"x": 1, "y": 2, "width": 10, "height": 20}},
                   {"digit": 2, "confidence": 0.8}],
    }  # fmt: skip
    r = Recognition.from_json(data)
    assert r.text == "42"
    assert r.digits == (DigitRead(4, 0.9, Box(1, 2, 10, 20)), DigitRead(2, 0.8, None))
    assert r.raw["some_future_field"] == {"x": 1}  # kept for --json


def test_a_page_and_its_last_page():
    page = Page.from_json({"items": [TODAY, TODAY], "next_page_token": "abc"})
    assert len(page.items) == 2 and page.next_page_token == "abc"
    assert Page.from_json({"items": [], "next_page_token": None}).next_page_token is None


def test_a_problem_document_gives_its_slug_title_and_detail():
    body = {"type": "/problems/not-a-digit", "title": "The image shows no digit", "status": 422,
            "detail": "it looks like a letter", "instance": "/v1/recognitions",
            "request_id": "r1"}  # fmt: skip
    error = ProblemError.from_http(422, {"content-type": "application/problem+json"}, "", body)
    assert (error.slug, error.title, error.detail, error.request_id) == (
        "not-a-digit",
        body["title"],
        body["detail"],
        "r1",
    )
    assert not (error.is_auth or error.is_unsupported or error.is_server_side)


def test_an_html_error_page_from_a_proxy_is_reported_not_parsed():
    html = "<html><body><h1>502 Bad Gateway</h1>\n<hr>nginx</body></html>"
    error = ProblemError.from_http(502, {"content-type": "text/html", "retry-after": "3"}, html, None)
    assert error.slug == "" and error.title == "HTTP 502" and "502 Bad Gateway" in error.detail
    assert error.is_server_side and error.retry_after == 3


def test_grpc_reasons_take_the_http_slugs_spelling():
    error = ProblemError.from_grpc_reason("INVALID_ARGUMENT", "NOT_AN_IMAGE", "the bytes are not an image")
    assert error.slug == "not-an-image" and not error.is_server_side
    assert ProblemError.from_grpc_reason("UNAUTHENTICATED", "TOKEN_REQUIRED", "").is_auth

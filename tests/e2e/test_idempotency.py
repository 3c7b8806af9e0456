"""Idempotent uploads through the real stack (gateway, recorder, the session's Cassandra): the
same Idempotency-Key, user and image make one record however often they are sent."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import DATA

SEVEN = (DATA / "seven.png").read_bytes()


def post(http, key: str | bytes | None, user: str, image: bytes = SEVEN) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return http.post("/v1/recognitions", files={"image": ("seven.png", image, "image/png")}, data={"user": user}, headers=headers)  # noqa: E501


def history(http, user: str) -> list[str]:
    return [item["id"] for item in http.get("/v1/recognitions", params={"user": user}).json()["items"]]


def test_a_retry_with_the_same_key_returns_the_first_record(http):
    user, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    first = post(http, key, user)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = post(http, key, user)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["received_at"] == first.json()["received_at"]  # the first attempt's record
    assert history(http, user) == [first.json()["id"]]


def test_concurrent_attempts_with_one_key_store_one_record(http):
    user, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: post(http, key, user), range(6)))
    assert all(r.status_code in (200, 201) for r in replies), [r.text for r in replies]
    assert len({r.json()["id"] for r in replies}) == 1
    assert sum(r.status_code == 201 for r in replies) == 1
    assert len(history(http, user)) == 1


def test_the_same_key_with_another_image_or_user_is_refused_not_overwritten(http):
    user, key = f"idem-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    first = post(http, key, user)
    assert first.status_code == 201
    other_image = SEVEN + b"\0"  # a different upload (PNG readers ignore trailing bytes)
    for reply in (post(http, key, user, other_image), post(http, key, user + "-other")):
        assert reply.status_code == 422, reply.text
        assert reply.json()["type"] == "/problems/idempotency-key-reused"
    stored = http.get(f"/v1/recognitions/{first.json()['id']}/image")
    assert stored.content == SEVEN
    assert history(http, user) == [first.json()["id"]]


def test_without_a_key_every_upload_is_a_new_record(http):
    user = f"idem-{uuid.uuid4().hex[:8]}"
    ids = {post(http, None, user).json()["id"] for _ in range(2)}
    assert len(ids) == 2


@pytest.mark.parametrize("key", ["", "x" * 129, "café".encode(), "tab\there"], ids=["empty", "long", "latin-1", "tab"])
def test_a_malformed_key_is_a_400(http, key):
    reply = post(http, key, "ada")
    assert reply.status_code == 400, reply.text
    assert reply.json()["type"] == "/problems/invalid-request"
    assert "Idempotency-Key" in reply.json()["detail"]

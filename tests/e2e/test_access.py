"""The access model over HTTP, against the real stack: anonymous uploads, user tokens issued by
the admin, per-record authorization, deletion, revocation, and what strangers cannot reach."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.test_error_contract import assert_problem
from tests.helpers import DATA

SEVEN = (DATA / "seven.png").read_bytes()


def upload(client: httpx.Client, **fields) -> httpx.Response:  # type: ignore[no-untyped-def]
    return client.post("/v1/recognitions", files={"image": ("seven.png", SEVEN, "image/png")}, data=fields)


@pytest.fixture()
def user(http, stack):
    """A fresh user: (name, client with its token, the token's description)."""
    name = f"user-{uuid.uuid4().hex[:8]}"
    issued = http.post("/v1/tokens", json={"user": name})
    assert issued.status_code == 201, issued.text
    token = issued.json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    with httpx.Client(base_url=stack.config.gateway_url, timeout=30, headers=headers) as client:
        yield name, client, token


def test_anonymous_uploads_are_accepted_but_not_readable_back(anonymous, http):
    stored = upload(anonymous)
    assert stored.status_code == 201 and stored.json()["user"] == ""
    for path in (f"/v1/recognitions/{stored.json()['id']}", stored.json()["image_url"], "/v1/recognitions"):
        reply = anonymous.get(path)
        assert_problem(reply, 401, "authentication-required")
        assert reply.headers["www-authenticate"] == 'Bearer realm="digits"'
    assert_problem(anonymous.delete(f"/v1/recognitions/{stored.json()['id']}"), 401, "authentication-required")
    # Recording under a name takes that user's token.
    assert_problem(upload(anonymous, user="ada"), 401, "authentication-required")
    assert http.get(f"/v1/recognitions/{stored.json()['id']}").status_code == 200  # the admin reads all


@pytest.mark.parametrize("header", ["Bearer dgt_" + "x" * 43, "Basic YWRhOnNlY3JldA==", "Bearer", "Bearer a b"])
def test_a_bad_token_is_refused_with_a_challenge(anonymous, header):
    for reply in (
        anonymous.get("/v1/recognitions", headers={"Authorization": header}),
        anonymous.post("/v1/recognitions", files={"image": ("seven.png", SEVEN, "image/png")},
                       headers={"Authorization": header}),
    ):  # fmt: skip
        assert_problem(reply, 401, "invalid-token")
        assert reply.headers["www-authenticate"] == 'Bearer realm="digits", error="invalid_token"'


def test_only_the_admin_issues_and_revokes_tokens(anonymous, user):
    name, client, token = user
    assert token["token"].startswith("dgt_") and token["user"] == name and len(token["id"]) == 64
    assert_problem(anonymous.post("/v1/tokens", json={"user": "mallory"}), 401, "authentication-required")
    assert_problem(client.post("/v1/tokens", json={"user": "mallory"}), 403, "forbidden")
    assert_problem(client.delete(f"/v1/tokens/{token['id']}"), 403, "forbidden")


def test_a_user_token_sees_its_own_records_only(user, http):
    name, client, _ = user
    mine = upload(client).json()
    assert mine["user"] == name  # recorded under the token's user
    assert_problem(upload(client, user="someone-else"), 403, "forbidden")
    others = upload(http, user=f"other-{uuid.uuid4().hex[:8]}").json()  # the admin may name anyone

    assert client.get(f"/v1/recognitions/{mine['id']}").json()["id"] == mine["id"]
    image = client.get(mine["image_url"])
    assert image.content == SEVEN and image.headers["x-content-type-options"] == "nosniff"
    assert [item["id"] for item in client.get("/v1/recognitions").json()["items"]] == [mine["id"]]
    # Someone else's record is exactly like a missing one.
    assert_problem(client.get(f"/v1/recognitions/{others['id']}"), 404, "recognition-not-found")
    assert_problem(client.get(others["image_url"]), 404, "recognition-not-found")
    assert_problem(client.get("/v1/recognitions", params={"user": others["user"]}), 403, "forbidden")
    assert_problem(client.get("/v1/recognitions", params={"since": "2026-01-01T00:00:00Z"}), 403, "forbidden")


def test_delete_by_the_owner_and_by_the_admin(user, http):
    _, client, _ = user
    first, second = upload(client).json(), upload(client).json()
    assert client.delete(f"/v1/recognitions/{first['id']}").status_code == 204
    assert_problem(client.get(f"/v1/recognitions/{first['id']}"), 404, "recognition-not-found")
    assert_problem(client.get(first["image_url"]), 404, "recognition-not-found")
    assert_problem(client.delete(f"/v1/recognitions/{first['id']}"), 404, "recognition-not-found")
    assert [item["id"] for item in client.get("/v1/recognitions").json()["items"]] == [second["id"]]
    assert http.delete(f"/v1/recognitions/{second['id']}").status_code == 204
    assert client.get("/v1/recognitions").json()["items"] == []


def test_a_revoked_token_is_refused(user, http):
    _, client, token = user
    assert client.get("/v1/recognitions").status_code == 200
    assert http.delete(f"/v1/tokens/{token['id']}").status_code == 204
    assert_problem(client.get("/v1/recognitions"), 401, "invalid-token")
    assert_problem(http.delete(f"/v1/tokens/{token['id']}"), 404, "token-not-found")
    assert_problem(http.delete("/v1/tokens/not-a-token-id"), 400, "invalid-request")
    assert_problem(http.post("/v1/tokens", json={"user": ""}), 400, "invalid-request")


def test_metrics_are_not_on_the_api_port_nor_linked_from_the_page(anonymous):
    assert_problem(anonymous.get("/metrics"), 404, "not-found")
    assert "/metrics" not in anonymous.get("/").text

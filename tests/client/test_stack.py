"""The CLI and the HTTP/gRPC clients against the whole stack (real gateway, recognizer, recorder
and Cassandra: the session's ``stack`` from tests/conftest.py)."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from digits_client import GrpcClient, HttpClient, ProblemError

from tests.helpers import DATA

SEVEN = DATA / "seven.png"


@pytest.fixture()
def url(stack):
    return stack.config.gateway_url


@pytest.fixture()
def admin(stack):
    return {"DIGITS_URL": stack.config.gateway_url, "DIGITS_TOKEN": stack.admin_token}


@pytest.fixture()
def user_token(http):
    """A fresh user's token, issued by the admin over the real API."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    reply = http.post("/v1/tokens", json={"user": name})
    assert reply.status_code == 201, reply.text
    return name, reply.json()["token"]


def test_recognize_over_http_stores_a_record(digits, url, http):
    run = digits("--url", url, "recognize", "--json", SEVEN)
    assert run.code == 0, run
    [row] = json.loads(run.out)
    assert row["file"] == str(SEVEN) and row["recognition"]["digit"] == 7
    stored = http.get(f"/v1/recognitions/{row['recognition']['id']}")
    assert stored.status_code == 200 and stored.json()["digit"] == 7


def test_a_user_recognises_a_folder_and_reads_the_history_back(digits, url, user_token, tmp_path):
    name, token = user_token
    for i in range(3):
        shutil.copy(SEVEN, tmp_path / f"seven-{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # a PNG signature, then nothing
    env = {"DIGITS_URL": url, "DIGITS_TOKEN": token}

    run = digits("recognize", "--json", "--concurrency", 3, tmp_path, env=env)
    assert run.code == 1, run  # the broken file failed, the others did not
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(run.out)}
    assert rows["broken.png"]["problem"]["status"] in (415, 422)
    assert rows["broken.png"]["problem"]["request_id"]
    ids = {rows[f"seven-{i}.png"]["recognition"]["id"] for i in range(3)}
    assert {rows[f"seven-{i}.png"]["recognition"]["user"] for i in range(3)} == {name}

    history = digits("history", "--json", env=env)
    assert history.code == 0, history
    assert {item["id"] for item in json.loads(history.out)["items"]} == ids

    # One item a page, every page followed: the same three, newest first, as CSV.
    paged = digits("history", "--limit", 1, "--all", "--csv", env=env)
    assert paged.code == 0, paged
    lines = paged.out.splitlines()
    assert lines[0].startswith("id,received_at,user") and {line.split(",")[0] for line in lines[1:]} == ids
    first = digits("history", "--limit", 1, env=env)
    assert first.code == 0 and "--page-token" in first.err, first


def test_history_without_a_token_exits_3_with_the_problem(digits, url):
    run = digits("--url", url, "history")
    assert run.code == 3, run
    assert "A bearer token is required (401 authentication-required)" in run.err
    assert "DIGITS_TOKEN" in run.err and "request id:" in run.err


def test_a_bad_token_exits_3(digits, url):
    run = digits("--url", url, "--token", "dgt_" + "x" * 43, "history")
    assert run.code == 3 and "invalid-token" in run.err, run


def test_label_calls_the_label_endpoint(digits, admin, http):
    upload = http.post("/v1/recognitions", files={"image": ("seven.png", SEVEN.read_bytes(), "image/png")})
    assert upload.status_code == 201, upload.text
    recognition_id = upload.json()["id"]
    run = digits("label", "--json", recognition_id, 4, env=admin)
    assert run.code == 0 and recognition_id in run.out, run
    assert http.get(f"/v1/recognitions/{recognition_id}").json()["label"]["digit"] == 4


def test_label_of_an_unknown_recognition_is_a_refusal(digits, admin):
    run = digits("label", str(uuid.uuid1()), 3, env=admin)
    assert run.code == 1 and "recognition-not-found" in run.err and "Traceback" not in run.err, run


def test_stats(digits, admin):
    run = digits("stats", "--json", env=admin)
    assert run.code == 0, run
    assert '"requests"' in run.out and '"digits"' in run.out, run


def test_the_http_client_round_trip(stack):
    with HttpClient(stack.config.gateway_url, token=stack.admin_token) as client:
        stored = client.recognize(SEVEN, user="round-trip")
        assert stored.id and stored.digit == 7 and stored.user == "round-trip"
        assert client.get(stored.id).digit == 7
        assert client.image(stored.id) == SEVEN.read_bytes()
        assert stored.id in {r.id for page in client.pages(user="round-trip", limit=1) for r in page.items}
        client.delete(stored.id)
        with pytest.raises(ProblemError) as gone:
            client.get(stored.id)
    assert (gone.value.status, gone.value.slug) == (404, "recognition-not-found")


def test_the_grpc_client_reads_what_the_gateway_stored(stack):
    c = stack.config
    with HttpClient(c.gateway_url, token=stack.admin_token) as http_client:
        stored = http_client.recognize(SEVEN, user="grpc-reader")
    with GrpcClient(recognizer=f"{c.bind}:{c.recognizer_port}", recorder=f"{c.bind}:{c.recorder_port}",
                    token=stack.admin_token) as client:  # fmt: skip
        again = client.get(stored.id)
        assert (again.id, again.digit, again.user, again.filename) == (
            stored.id,
            7,
            "grpc-reader",
            "seven.png",
        )
        assert again.received_at == stored.received_at
        assert stored.id in {r.id for r in client.history(user="grpc-reader").items}
        assert client.image(stored.id) == SEVEN.read_bytes()
        assert client.recognize(SEVEN.read_bytes()).digit == 7
    with (
        GrpcClient(recorder=f"{c.bind}:{c.recorder_port}") as anonymous,
        pytest.raises(ProblemError) as refused,
    ):
        anonymous.get(stored.id)
    assert refused.value.is_auth and refused.value.slug == "token-required"

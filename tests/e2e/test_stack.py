"""The whole stack as separate processes: HTTP upload → gateway → recognizer → recorder → Cassandra."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from services.gateway.config import Config as GatewayConfig
from tests.conftest import TEST_CASSANDRA_HOST
from tests.e2e.conftest import KEYSPACE
from tests.helpers import DATA, all_pages

SEVEN = (DATA / "seven.png").read_bytes()
# The gateway's default limit on a request body.
UPLOAD_LIMIT = GatewayConfig().max_upload_bytes


def upload(http, data: bytes = SEVEN, name: str = "seven.png", kind: str = "image/png", **fields):
    return http.post("/v1/recognitions", files={"image": (name, data, kind)}, data=fields)


def test_upload_is_recognised_and_stored_with_its_image(http):
    reply = upload(http, user="ada")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["digit"] == 7
    assert 0.9 < body["confidence"] <= 1.0
    assert len(body["probabilities"]) == 10
    assert body["user"] == "ada" and body["filename"] == "seven.png"
    uuid.UUID(body["id"])

    again = http.get(f"/v1/recognitions/{body['id']}")
    assert again.status_code == 200
    assert again.json() == body

    image = http.get(body["image_url"])
    assert image.status_code == 200
    assert image.content == SEVEN
    assert image.headers["content-type"] == "image/png"


def test_the_row_is_in_cassandra_read_with_cqlsh(http):
    body = upload(http, user="cqlsh-check").json()
    # cqlsh is an independent client: it knows nothing of our code.
    out = subprocess.run(
        [str(Path(sys.executable).parent / "cqlsh"), TEST_CASSANDRA_HOST, "9042", "-e",
         f"SELECT user, digit, image_size FROM {KEYSPACE}.recognitions WHERE id = {body['id']};"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "(1 rows)" in out
    row = [line for line in out.splitlines() if "cqlsh-check" in line]
    assert row and [cell.strip() for cell in row[0].split("|")] == ["cqlsh-check", "7", str(len(SEVEN))]


def test_the_web_page_is_served(http):
    page = http.get("/")
    assert page.status_code == 200
    assert "<canvas" in page.text and "/v1/recognitions" in page.text


@pytest.mark.parametrize(
    ("request_kwargs", "status", "problem"),
    [
        ({"files": {"image": ("notes.txt", b"hello, not an image", "text/plain")}}, 415, "not-an-image"),
        ({"files": {"image": ("empty.png", b"", "image/png")}}, 422, "empty-image"),
        ({"files": {"other": ("seven.png", SEVEN, "image/png")}}, 400, "missing-image"),
        ({"data": {"user": "ada"}}, 415, "unsupported-media-type"),
        ({"content": b"", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400, None),
        ({"json": {"image": "base64?"}}, 415, "unsupported-media-type"),
        ({"files": {"image": ("big.png", b"\x89PNG" + b"0" * UPLOAD_LIMIT, "image/png")}}, 413, "request-too-large"),
        ({"files": {"image": ("seven.png", SEVEN, "image/png")}, "data": {"user": "x" * 200}}, 400, "invalid-user"),
    ],
    ids=["text-file", "empty-file", "missing-field", "form-urlencoded", "empty-body", "json", "too-large", "long-user"],
)
def test_bad_requests_get_a_clear_4xx(http, request_kwargs, status, problem):
    reply = http.post("/v1/recognitions", **request_kwargs)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["detail"] and body["status"] == status and body["title"]
    assert body["request_id"] == reply.headers["x-request-id"]
    if problem:
        assert body["type"] == f"/problems/{problem}"


def test_unknown_and_malformed_ids(http):
    assert http.get(f"/v1/recognitions/{uuid.uuid1()}").status_code == 404
    malformed = http.get("/v1/recognitions/not-a-uuid")
    assert malformed.status_code == 400 and malformed.json()["type"] == "/problems/invalid-request"
    assert http.get(f"/v1/recognitions/{uuid.uuid1()}").json()["type"] == "/problems/recognition-not-found"


def test_metrics_are_exposed_by_every_service(stack, http):
    upload(http)
    c = stack.config
    assert http.get("/metrics").status_code == 404  # never on the public API port
    gateway = httpx.get(f"http://{c.bind}:{c.gateway_metrics_port}/metrics").text
    # By the matched route (not the raw path, whose ids would make a series per record) and status.
    assert 'digits_gateway_request_seconds_count{method="POST",route="/v1/recognitions",status="201"}' in gateway
    http.get(f"/v1/recognitions/{uuid.uuid1()}")
    gateway = httpx.get(f"http://{c.bind}:{c.gateway_metrics_port}/metrics").text
    assert 'route="/v1/recognitions/{recognition_id}",status="404"' in gateway
    recognizer = httpx.get(f"http://{c.bind}:{c.recognizer_metrics_port}/metrics").text
    recorder = httpx.get(f"http://{c.bind}:{c.recorder_metrics_port}/metrics").text
    assert "digits_recognizer_inference_seconds_bucket" in recognizer
    assert 'digits_grpc_server_handled_total{code="OK",method="/digits.v1.Recorder/Record"}' in recorder


def test_a_down_recorder_gives_a_prompt_503_and_nothing_hangs(stack, http):
    stack.processes.pop("recorder").stop()
    try:
        start = time.monotonic()
        reply = upload(http)
        assert reply.status_code == 503
        assert reply.json()["type"] == "/problems/dependency-unavailable"
        # Which dependency, and nothing of its internals (transport errors, addresses).
        assert reply.json()["detail"] == "the recorder is unavailable; retry shortly"
        assert reply.headers["retry-after"]
        assert time.monotonic() - start < 5
        # The gateway itself can still serve (the page, reads of other kinds): it stays ready,
        # so that Kubernetes does not turn a recorder outage into a total one.
        assert http.get("/readyz").status_code == 200
    finally:
        stack.start_service("recorder")
        stack.wait_service("recorder")
    _recovers(http, "recorder")


def _recovers(http, service: str) -> None:  # type: ignore[no-untyped-def]
    """Uploads succeed again soon after ``service`` is back: the gateway's channel reconnects on
    its own (until then, within gRPC's reconnect backoff, an upload gets a prompt 503)."""
    deadline = time.monotonic() + 30
    while (reply := upload(http)).status_code != 201:
        assert time.monotonic() < deadline, f"the gateway did not recover after the {service} came back: {reply.text}"
        assert reply.status_code == 503, reply.text
        time.sleep(0.5)


def test_sigterm_stops_a_service_gracefully(stack, http):
    process = stack.processes.pop("recognizer")
    assert process.stop() == 0
    assert '"msg": "stopped"' in process.log_path.read_text()
    stack.start_service("recognizer")
    stack.wait_service("recognizer")
    _recovers(http, "recognizer")


def unique_user() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def test_a_users_history_over_http_newest_first_and_complete(http):
    user = unique_user()
    uploaded = [upload(http, user=user).json() for _ in range(5)]
    items = all_pages(http, user=user, limit=2)
    assert [i["id"] for i in items] == [u["id"] for u in reversed(uploaded)]
    for item in items:
        assert {"id", "digit", "confidence", "user", "received_at"} <= item.keys()
        assert item["user"] == user and item["digit"] == 7
    assert http.get("/v1/recognitions", params={"user": unique_user()}).json() == {"items": [], "next_page_token": None}


def test_a_time_window_over_http(http):
    since = time.time() - 1
    mine = [upload(http, user=unique_user()).json()["id"] for _ in range(3)]
    window = {
        "since": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since)) + "Z",
        "until": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 2)) + "Z",
    }
    listed = [i["id"] for i in all_pages(http, limit=1, **window)]
    assert len(listed) == len(set(listed))
    # Other tests may upload in the same window: ours appear newest first among them.
    assert [i for i in listed if i in mine] == list(reversed(mine))
    assert http.get("/v1/recognitions").status_code == 200  # the default window: the last 24 hours


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1000"},
        {"limit": "ten"},
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"user": "ada", "since": "2026-01-01T00:00:00Z"},
        {"user": ""},
        {"since": "2020-01-01T00:00:00Z", "until": "2021-01-01T00:00:00Z"},
        {"since": "2021-01-02T00:00:00Z", "until": "2021-01-01T00:00:00Z"},
        {"user": "ada", "page_token": "garbage"},
    ],
    ids=["limit-0", "limit-huge", "limit-text", "since-text", "until-bad-month", "user-and-window", "empty-user",
         "window-too-long", "window-reversed", "bad-token"],
)  # fmt: skip
def test_bad_listing_parameters_get_a_clear_400(http, params):
    reply = http.get("/v1/recognitions", params=params)
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["detail"] and reply.json()["type"] in ("/problems/invalid-request", "/problems/invalid-page-token")


def test_the_image_of_an_unknown_id_is_404(http):
    assert http.get(f"/v1/recognitions/{uuid.uuid1()}/image").status_code == 404


def test_a_retried_record_call_stores_one_record_visible_over_http(stack, http):
    """The gateway's gRPC retries of Record are safe: the same request, twice, is one record."""
    import grpc

    from digits.v1 import recorder_pb2_grpc
    from tests.helpers import with_token
    from tests.recording import record_request

    user = unique_user()
    request = record_request(user=user)
    c = stack.config
    with grpc.insecure_channel(f"{c.bind}:{c.recorder_port}") as channel:
        stub = recorder_pb2_grpc.RecorderStub(with_token(channel, stack.admin_token))
        ids = {stub.Record(request, timeout=10).id for _ in range(3)}
    assert len(ids) == 1
    items = all_pages(http, user=user)
    assert [i["id"] for i in items] == list(ids)
    image = http.get(items[0]["image_url"])
    assert image.status_code == 200 and image.content == SEVEN


def test_a_number_is_answered_and_recorded_digit_by_digit(http):
    from tests import drawn

    data, expected = drawn.number(3, gap=6, start=40)
    reply = upload(http, data, name="number.png", user="ada")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["number"] == expected and body["digit"] == int(expected[0])
    assert [d["digit"] for d in body["digits"]] == [int(c) for c in expected]
    assert all(set(d["box"]) == {"x", "y", "width", "height"} for d in body["digits"])
    assert http.get(f"/v1/recognitions/{body['id']}").json() == body  # as stored in Cassandra


def test_a_single_digit_has_a_number_equal_to_it(http):
    body = upload(http).json()
    assert body["number"] == "7" and len(body["digits"]) == 1


def test_what_is_not_a_digit_is_refused_and_not_recorded(http):
    from tests import drawn

    before = len(all_pages(http, user="not-a-digit-test", limit=50))
    reply = upload(http, drawn.symbol("A", seed=3), name="letter.png", user="not-a-digit-test")
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["type"] == "/problems/not-a-digit"
    assert len(all_pages(http, user="not-a-digit-test", limit=50)) == before


def test_the_field_the_model_read_is_shown_on_request_and_never_stored(http):
    import base64
    import io

    from PIL import Image

    plain = upload(http).json()
    assert plain["digits"][0]["field_png"] is None
    reply = http.post("/v1/recognitions", params={"fields": "true"}, files={"image": ("seven.png", SEVEN, "image/png")})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    field = Image.open(io.BytesIO(base64.b64decode(body["digits"][0]["field_png"])))
    assert field.size == (28, 28)
    assert http.get(f"/v1/recognitions/{body['id']}").json()["digits"][0]["field_png"] is None

"""Corrections and the dashboard through the real stack: HTTP label -> Cassandra -> the exported
training set, and GET /v1/stats counting uploads, refusals and corrections."""

from __future__ import annotations

import base64
import csv
import io
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from tests import drawn
from tests.conftest import E2E_KEYSPACE, TEST_CASSANDRA_HOST
from tests.helpers import DATA, ROOT

SEVEN = (DATA / "seven.png").read_bytes()


def upload(client, data: bytes = SEVEN, name: str = "seven.png", **params):  # type: ignore[no-untyped-def]
    return client.post("/v1/recognitions", files={"image": (name, data, "image/png")}, params=params)


@pytest.fixture()
def ada(http):
    """A client with a fresh user's token."""
    user = f"ada-{uuid.uuid4().hex[:8]}"
    token = http.post("/v1/tokens", json={"user": user})
    assert token.status_code == 201, token.text
    http.headers["Authorization"] = f"Bearer {token.json()['token']}"
    return http


def test_a_correction_goes_from_the_api_to_an_exported_training_file(ada, tmp_path):
    answer = upload(ada, fields="true")
    assert answer.status_code == 201, answer.text
    record = answer.json()
    assert record["label"] is None
    labelled = ada.post(f"/v1/recognitions/{record['id']}/label", json={"digit": 1})
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["label"]["digit"] == 1 and labelled.json()["label"]["number"] == "1"
    assert ada.get(f"/v1/recognitions/{record['id']}").json()["label"]["number"] == "1"
    assert [i["label"] for i in ada.get("/v1/recognitions").json()["items"] if i["id"] == record["id"]][0]["digit"] == 1

    # What `make export-corrections` runs, with the recorder's settings for this stack's Cassandra.
    env = {**os.environ, "RECORDER_CASSANDRA_HOSTS": TEST_CASSANDRA_HOST, "RECORDER_KEYSPACE": E2E_KEYSPACE}
    out = tmp_path / "corrections"
    done = subprocess.run([sys.executable, "-m", "services.recorder.export_corrections", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [r for r in csv.DictReader((out / "labels.csv").open()) if r["record_id"] == record["id"]]
    assert len(rows) == 1, done.stdout
    (row,) = rows
    assert (row["digit"], row["model_version"]) == ("1", record["model_version"])
    assert row["labelled_at"].startswith(labelled.json()["label"]["labelled_at"][:19])
    exported = np.asarray(Image.open(out / row["file"]))
    # The very field the model read for this upload (the recognizer showed it with ?fields=true).
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(record["digits"][0]["field_png"]))))
    assert exported.shape == (28, 28) and np.array_equal(exported, seen)

    # A deleted record takes its correction with it: the next export has no row for it.
    assert ada.delete(f"/v1/recognitions/{record['id']}").status_code == 204
    subprocess.run([sys.executable, "-m", "services.recorder.export_corrections", "--out", str(out)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
    assert not [r for r in csv.DictReader((out / "labels.csv").open()) if r["record_id"] == record["id"]]


def test_labels_are_checked_and_only_the_owner_may_label(ada, http, anonymous, stack):
    record = upload(ada).json()
    path = f"/v1/recognitions/{record['id']}/label"
    for body in ({"digit": 10}, {"digit": "x"}, {}, {"digit": 1, "number": "1"}, {"number": "4a"}):
        reply = ada.post(path, json=body)
        assert (reply.status_code, reply.json()["type"]) == (400, "/problems/invalid-request"), body
    reply = ada.post(path, json={"number": "42"})  # the record holds one digit
    assert (reply.status_code, reply.json()["type"]) == (422, "/problems/invalid-label")
    assert ada.post(path, json={"number": "3"}).json()["label"]["digit"] == 3
    assert ada.post(path, json={"digit": 5}).json()["label"]["number"] == "5"  # relabelling: the last wins
    reply = anonymous.post(path, json={"digit": 1})
    assert (reply.status_code, reply.json()["type"]) == (401, "/problems/authentication-required")
    other = http.post("/v1/tokens", json={"user": f"eve-{uuid.uuid4().hex[:8]}"}, headers={
        "Authorization": f"Bearer {stack.admin_token}"}).json()["token"]  # fmt: skip
    reply = anonymous.post(path, json={"digit": 1}, headers={"Authorization": f"Bearer {other}"})
    assert (reply.status_code, reply.json()["type"]) == (404, "/problems/recognition-not-found")
    reply = ada.post(f"/v1/recognitions/{uuid.uuid1()}/label", json={"digit": 1})
    assert (reply.status_code, reply.json()["type"]) == (404, "/problems/recognition-not-found")


def stats(client) -> dict:  # type: ignore[no-untyped-def]
    reply = client.get("/v1/stats", params={"days": 1})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_dashboard_counts_uploads_refusals_and_corrections(ada, anonymous):
    before = stats(ada)
    record = upload(ada).json()
    assert ada.post(f"/v1/recognitions/{record['id']}/label", json={"digit": 1}).json()["label"]["digit"] == 1
    refused = upload(anonymous, drawn.symbol("A", seed=3), name="letter.png")
    assert refused.json()["type"] == "/problems/not-a-digit"
    # Counted in the background: the record after its answer, the refusal within the gateway's
    # report period (2 s).
    deadline = time.monotonic() + 15
    while True:
        after = stats(ada)
        if (after["refusals_by_reason"].get("not-a-digit", 0) > before["refusals_by_reason"].get("not-a-digit", 0)
                and after["corrections"] > before["corrections"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert after["refusals_by_reason"]["not-a-digit"] >= before["refusals_by_reason"].get("not-a-digit", 0) + 1
    assert after["recognitions"] >= before["recognitions"] + 1 and after["corrections"] >= before["corrections"] + 1
    assert after["digits"][7] >= before["digits"][7] + 1
    assert after["model_versions"][record["model_version"]] >= 1
    assert sum(b["count"] for b in after["confidence_histogram"]) == sum(after["digits"])
    assert after["requests"] == after["recognitions"] + after["refusals"] + after["failures"]
    assert 0 < after["error_rate"] < 1 and 0 < after["correction_rate"] <= 1
    assert len(after["hourly"]) == 24 and sum(h["requests"] for h in after["hourly"]) == after["requests"]
    assert "items" not in after and record["id"] not in str(after)  # aggregates only


def test_the_dashboard_needs_a_token_and_at_most_31_days(ada, anonymous):
    reply = anonymous.get("/v1/stats")
    assert (reply.status_code, reply.json()["type"]) == (401, "/problems/authentication-required")
    assert ada.get("/v1/stats").json()["days"] == 7
    assert len(ada.get("/v1/stats", params={"days": 31}).json()["hourly"]) == 31 * 24
    for days in ("0", "32", "x"):
        reply = ada.get("/v1/stats", params={"days": days})
        assert (reply.status_code, reply.json()["type"]) == (400, "/problems/invalid-request"), days

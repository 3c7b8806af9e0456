"""LabelRecognition, CountUploadOutcomes and GetStats over real gRPC, against the session's real
Cassandra node: what is stored where, who may label, and what the counters count."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime, timezone

import grpc
import pytest

from digits import errors
from digits.v1 import recognizer_pb2, recorder_pb2, recorder_pb2_grpc
from services.recorder.config import Config
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import TEST_ADMIN_TOKEN, with_token
from tests.recording import record_request, recorder_channel

KEYSPACE = "digits_labels"
# Counts are written in the background this often (tally.py): short here, so tests wait little.
FLUSH_SECONDS = 0.1


@pytest.fixture(scope="module")
def channel(cassandra):
    config = Config(
        host="127.0.0.1", port=0, metrics_port=0, cassandra_hosts=(TEST_CASSANDRA_HOST,), keyspace=KEYSPACE,
        replication_factor=1, admin_token=TEST_ADMIN_TOKEN, stats_flush_seconds=FLUSH_SECONDS,
    )  # fmt: skip
    with recorder_channel(config) as opened:
        yield opened


@pytest.fixture(scope="module")
def admin(channel):
    return recorder_pb2_grpc.RecorderStub(with_token(channel))


def as_user(channel, admin, name: str) -> recorder_pb2_grpc.RecorderStub:  # type: ignore[no-untyped-def]
    token = admin.CreateToken(recorder_pb2.CreateTokenRequest(user=name), timeout=10).token
    return recorder_pb2_grpc.RecorderStub(with_token(channel, token))


def fails(call, request, code: grpc.StatusCode, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    assert caught.value.code() == code and errors.reason_of(caught.value) == reason, caught.value.details()


def label(stub, record_id: str, number: str) -> recorder_pb2.Recognition:  # type: ignore[no-untyped-def]
    return stub.LabelRecognition(recorder_pb2.LabelRecognitionRequest(id=record_id, number=number), timeout=10).recognition


def corrections(cql, record_id: str) -> list:  # type: ignore[no-untyped-def]
    day = datetime.now(timezone.utc).date()
    return cql.execute(f"SELECT * FROM {KEYSPACE}.corrections_by_day WHERE day = %s AND id = %s",
                       [day, uuid.UUID(record_id)]).all()  # fmt: skip


def test_the_owner_labels_a_record_and_every_read_shows_it(channel, admin, cql):
    user = f"u-{uuid.uuid4().hex[:10]}"
    ada = as_user(channel, admin, user)
    stored = ada.Record(record_request(user=user, digit=7), timeout=10)
    labelled = label(ada, stored.id, "4")
    assert (labelled.label.digit, labelled.label.number) == (4, "4") and labelled.label.labelled_at.seconds > 0
    assert labelled.id == stored.id and labelled.digit == 7  # the model's answer is kept beside it
    fetched = ada.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id), timeout=10)
    assert fetched.label.number == "4"
    history = ada.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user), timeout=10).recognitions
    assert [(r.id, r.label.number) for r in history] == [(stored.id, "4")]
    window = admin.ListRecognitions(recorder_pb2.ListRecognitionsRequest(window=recorder_pb2.TimeWindow()), timeout=10)
    assert {r.id: r.label.number for r in window.recognitions}[stored.id] == "4"
    (row,) = corrections(cql, stored.id)
    assert (row.number, row.predicted, row.user, row.model_version) == ("4", "7", user, "abc123")

    # Relabelling overwrites: the last label wins, and there is still one correction.
    assert label(ada, stored.id, "9").label.number == "9"
    assert ada.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id), timeout=10).label.number == "9"
    assert [r.number for r in corrections(cql, stored.id)] == ["9"]


def test_an_unlabelled_record_has_no_label(admin):
    stored = admin.Record(record_request(), timeout=10)
    assert not stored.HasField("label")
    assert not admin.GetRecognition(recorder_pb2.GetRecognitionRequest(id=stored.id), timeout=10).HasField("label")


def test_only_the_owner_or_the_admin_may_label(channel, admin):
    owner, other = f"u-{uuid.uuid4().hex[:10]}", f"u-{uuid.uuid4().hex[:10]}"
    stored = admin.Record(record_request(user=owner), timeout=10)
    request = recorder_pb2.LabelRecognitionRequest(id=stored.id, number="1")
    fails(as_user(channel, admin, other).LabelRecognition, request, grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")
    fails(recorder_pb2_grpc.RecorderStub(channel).LabelRecognition, request, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
    anonymous_record = admin.Record(record_request(user=""), timeout=10)
    assert label(admin, anonymous_record.id, "3").label.number == "3"  # the admin labels anything


def test_a_label_must_have_as_many_digits_as_the_record(admin):
    single = admin.Record(record_request(), timeout=10)
    for bad in ("", "12", "x", "-1", "٣"):
        fails(admin.LabelRecognition, recorder_pb2.LabelRecognitionRequest(id=single.id, number=bad),
              grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LABEL")  # fmt: skip
    readings = [recognizer_pb2.DigitReading(digit=d, confidence=0.9) for d in (4, 2)]
    number = admin.Record(record_request(digit=4, number="42", digits=readings), timeout=10)
    fails(admin.LabelRecognition, recorder_pb2.LabelRecognitionRequest(id=number.id, number="4"),
          grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LABEL")  # fmt: skip
    assert label(admin, number.id, "43").label.number == "43"
    fails(admin.LabelRecognition, recorder_pb2.LabelRecognitionRequest(id=str(uuid.uuid1()), number="1"),
          grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")  # fmt: skip


def test_deleting_a_record_deletes_its_correction(admin, cql):
    stored = admin.Record(record_request(), timeout=10)
    label(admin, stored.id, "1")
    assert corrections(cql, stored.id)
    admin.DeleteRecognition(recorder_pb2.DeleteRecognitionRequest(id=stored.id), timeout=10)
    assert corrections(cql, stored.id) == []
    fails(admin.LabelRecognition, recorder_pb2.LabelRecognitionRequest(id=stored.id, number="1"),
          grpc.StatusCode.NOT_FOUND, "RECOGNITION_NOT_FOUND")  # fmt: skip


def totals(stub, days: int = 1, settle: bool = False) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    """The counters of the last ``days``; ``settle`` first lets counts still in the tally land
    (an earlier test's, which would otherwise land in the middle of this one)."""
    if settle:
        time.sleep(5 * FLUSH_SECONDS)
    out: dict[tuple[str, str], int] = {}
    for count in stub.GetStats(recorder_pb2.GetStatsRequest(days=days), timeout=10).counts:
        out[count.metric, count.key] = out.get((count.metric, count.key), 0) + count.value
    return out


def eventually(stub, check, seconds: float = 10.0) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    """The totals once ``check`` holds: records are counted in the background, after the answer."""
    deadline = time.monotonic() + seconds
    while True:
        now = totals(stub)
        if check(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def test_records_are_counted_once_each_by_model_digit_and_confidence(admin):
    version = secrets.token_hex(6)  # only this test's records carry it
    before = totals(admin, settle=True)
    for digit, confidence in ((3, 0.95), (3, 0.55), (8, 0.99)):
        admin.Record(record_request(digit=digit, confidence=confidence, model_version=version), timeout=10)
    # A replay of an Idempotency-Key stores nothing new, and counts nothing new.
    keyed = record_request(digit=8, confidence=0.99, model_version=version)
    keyed.idempotency_key = str(uuid.uuid4())
    admin.Record(keyed, timeout=10)
    admin.Record(keyed, timeout=10)
    # So does a retry of the same request (same request_id and received_at) on this replica.
    plain = record_request(digit=5, confidence=0.3, model_version=version)
    admin.Record(plain, timeout=10)
    admin.Record(plain, timeout=10)
    after = eventually(admin, lambda t: t.get(("model", version), 0) >= 5)
    time.sleep(0.5)  # a double count would land by now
    after = totals(admin)
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert delta[("model", version)] == 5
    assert delta[("recognitions", "")] == 5
    assert (delta[("digit", "3")], delta[("digit", "8")], delta[("digit", "5")]) == (2, 2, 1)
    assert (delta[("confidence", "9")], delta[("confidence", "5")], delta[("confidence", "3")]) == (3, 1, 1)


def test_a_number_counts_each_of_its_digits(admin):
    before = totals(admin, settle=True)
    readings = [recognizer_pb2.DigitReading(digit=d, confidence=0.9) for d in (4, 2)]
    admin.Record(record_request(digit=4, number="42", digits=readings), timeout=10)
    after = eventually(admin, lambda t: t.get(("digit", "2"), 0) > before.get(("digit", "2"), 0))
    assert after[("digit", "2")] - before.get(("digit", "2"), 0) == 1
    assert after[("digit", "4")] - before.get(("digit", "4"), 0) == 1


def test_labels_and_corrections_are_counted_at_the_first_label_only(admin):
    right, wrong = (admin.Record(record_request(digit=7), timeout=10) for _ in range(2))
    before = totals(admin, settle=True)
    label(admin, right.id, "7")  # the model was right: a label, not a correction
    label(admin, wrong.id, "1")
    label(admin, wrong.id, "2")  # a relabel: neither
    after = eventually(admin, lambda t: t.get(("labels", ""), 0) - before.get(("labels", ""), 0) >= 2)
    time.sleep(0.5)
    after = totals(admin)
    assert after[("labels", "")] - before.get(("labels", ""), 0) == 2
    assert after[("corrections", "")] - before.get(("corrections", ""), 0) == 1


def test_upload_outcomes_are_counted_from_a_fixed_list(channel, admin):
    anonymous = recorder_pb2_grpc.RecorderStub(channel)
    before = totals(admin, settle=True)
    anonymous.CountUploadOutcomes(recorder_pb2.CountUploadOutcomesRequest(counts={"not-a-digit": 3, "no-digit-found": 1}), timeout=10)
    after = totals(admin)
    assert after[("outcome", "not-a-digit")] - before.get(("outcome", "not-a-digit"), 0) == 3
    assert after[("outcome", "no-digit-found")] - before.get(("outcome", "no-digit-found"), 0) == 1
    for counts in ({"anything-else": 1}, {"not-a-digit": 0}, {"not-a-digit": 10**7}):
        fails(anonymous.CountUploadOutcomes, recorder_pb2.CountUploadOutcomesRequest(counts=counts),
              grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OUTCOMES")  # fmt: skip
    assert totals(admin) == after  # nothing of a refused report was counted


def test_stats_need_a_token_and_a_window_of_1_to_31_days(channel, admin):
    user = as_user(channel, admin, f"u-{uuid.uuid4().hex[:10]}")
    reply = user.GetStats(recorder_pb2.GetStatsRequest(days=31), timeout=10)
    since, until = reply.since.ToDatetime(), reply.until.ToDatetime()
    assert (until - since).days == 31 and until.minute == 0 and until > datetime.utcnow()
    fails(recorder_pb2_grpc.RecorderStub(channel).GetStats, recorder_pb2.GetStatsRequest(),
          grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")  # fmt: skip
    fails(admin.GetStats, recorder_pb2.GetStatsRequest(days=32), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUERY")


def test_a_label_that_lands_after_a_deletion_does_not_bring_the_record_back(admin, cql):
    """The race the read-then-write leaves open: the record is deleted between LabelRecognition's
    read and its write, whose later timestamp makes label-only cells. Made here by hand."""
    user = f"u-{uuid.uuid4().hex[:10]}"
    stored = admin.Record(record_request(user=user), timeout=10)
    admin.DeleteRecognition(recorder_pb2.DeleteRecognitionRequest(id=stored.id), timeout=10)
    late = int(time.time() * 1_000_000) + 10_000_000  # after the deletion's timestamp
    received = stored.received_at.ToDatetime(tzinfo=timezone.utc)
    from services.recorder.paging import day_of

    cql.execute(f"UPDATE {KEYSPACE}.recognitions USING TIMESTAMP {late} SET label_number = '1' WHERE id = %s",
                [uuid.UUID(stored.id)])  # fmt: skip
    cql.execute(f"UPDATE {KEYSPACE}.recognitions_by_user_day USING TIMESTAMP {late} SET label_number = '1' "
                "WHERE user = %s AND day = %s AND id = %s", [user, day_of(received), uuid.UUID(stored.id)])  # fmt: skip
    assert cql.execute(f"SELECT label_number FROM {KEYSPACE}.recognitions WHERE id = %s", [uuid.UUID(stored.id)]).one()
    fails(admin.GetRecognition, recorder_pb2.GetRecognitionRequest(id=stored.id), grpc.StatusCode.NOT_FOUND,
          "RECOGNITION_NOT_FOUND")  # fmt: skip
    history = admin.ListRecognitions(recorder_pb2.ListRecognitionsRequest(user=user), timeout=10)
    assert list(history.recognitions) == []

"""The dashboard's arithmetic: what a record, a label and a report add to the counters, and how
the gateway turns the recorder's hourly counters into GET /v1/stats (no Cassandra here)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from digits.outcomes import UPLOAD_OUTCOMES
from digits.v1 import recorder_pb2
from services.gateway import problems
from services.gateway.stats import Stats
from services.recorder import stats
from services.recorder.corrections import invalid_label
from services.recorder.records import Record

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=timezone.utc)


def record(**overrides) -> Record:  # type: ignore[no-untyped-def]
    fields = dict(id=uuid.uuid1(), request_id=None, digit=7, confidence=0.97, probabilities=[], model_version="00f06f54cf9f",
                  user="", image=None, content_type="", filename="", image_size=0, client_address="", received_at=NOW)  # fmt: skip
    fields.update(overrides)
    return Record(**fields)  # type: ignore[arg-type]


def test_a_record_counts_each_digit_read_with_its_confidence_decile():
    number = record(number="42", readings=((4, 0.95, 0, 0, 1, 1), (2, 0.1, 0, 0, 1, 1)))
    assert stats.record_increments(number) == {
        ("recognitions", ""): 1, ("digit", "4"): 1, ("digit", "2"): 1, ("confidence", "9"): 1,
        ("confidence", "1"): 1, ("model", "00f06f54cf9f"): 1,
    }  # fmt: skip
    assert stats.record_increments(record(confidence=1.0))[("confidence", "9")] == 1  # 1.0 is in the top bucket
    # Model versions are counter keys: anything but a hex hash is one key, not a new row each.
    assert ("model", "other") in stats.record_increments(record(model_version="'; DROP TABLE x"))


def test_only_a_first_label_counts_and_a_correction_only_when_it_differs():
    assert stats.label_increments(record(), "7") == {("labels", ""): 1}
    assert stats.label_increments(record(), "1") == {("labels", ""): 1, ("corrections", ""): 1}
    assert stats.label_increments(record(label_number="1", labelled_at=NOW), "2") == {}


def test_reports_name_known_outcomes_with_sane_counts():
    assert stats.invalid_outcomes({"not-a-digit": 5}) is None
    assert stats.invalid_outcomes({"not-a-digit": 0}) and stats.invalid_outcomes({"x": 1})
    assert stats.invalid_outcomes({"not-a-digit": stats.MAX_OUTCOME_COUNT + 1})
    # Every outcome the gateway may report is one of its problem types.
    assert UPLOAD_OUTCOMES <= set(problems.TYPES)


def test_labels_have_as_many_digits_as_the_record():
    assert invalid_label("4", record()) is None and invalid_label("43", record(number="42")) is None
    for bad in ("", "12", "a", "٣", "-1"):
        assert invalid_label(bad, record()), bad


def test_the_window_is_whole_hours_ending_with_the_current_one():
    since, until = stats.window(7, NOW)
    assert until == datetime(2026, 12, 6, 11, tzinfo=timezone.utc) and until - since == timedelta(days=7)


def stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def test_the_gateway_adds_the_hours_up_into_rates_and_a_dense_series():
    since, until = stats.window(1, NOW)
    hour = since + timedelta(hours=3)
    counts = [("recognitions", "", 8), ("digit", "7", 8), ("confidence", "9", 6), ("confidence", "4", 2),
              ("model", "abc", 8), ("labels", "", 4), ("corrections", "", 2), ("outcome", "not-a-digit", 1),
              ("outcome", "dependency-unavailable", 1)]  # fmt: skip
    reply = recorder_pb2.GetStatsResponse(since=stamp(since), until=stamp(until), counts=[
        recorder_pb2.StatsCount(hour=stamp(hour), metric=m, key=k, value=v) for m, k, v in counts])  # fmt: skip
    out = Stats.from_proto(reply, 1)
    assert (out.requests, out.recognitions, out.refusals, out.failures) == (10, 8, 1, 1)
    assert out.refusals_by_reason == {"not-a-digit": 1} and out.failures_by_reason == {"dependency-unavailable": 1}
    assert (out.error_rate, out.refusal_rate, out.correction_rate) == (0.2, 0.1, 0.25)
    assert out.digits == [0] * 7 + [8, 0, 0] and [b.count for b in out.confidence_histogram][4:] == [2, 0, 0, 0, 0, 6]
    assert len(out.hourly) == 24 and out.hourly[3].hour == hour and out.hourly[3].requests == 10
    assert sum(h.requests for h in out.hourly) == 10


def test_no_requests_means_no_rate_rather_than_zero():
    since, until = stats.window(1, NOW)
    out = Stats.from_proto(recorder_pb2.GetStatsResponse(since=stamp(since), until=stamp(until)), 1)
    assert out.error_rate is None and out.correction_rate is None and out.requests == 0


@pytest.mark.parametrize("confidence, bucket", [(0.0, "0"), (0.099, "0"), (0.1, "1"), (0.999, "9"), (1.0, "9")])
def test_deciles(confidence, bucket):
    assert stats.decile(confidence) == bucket

"""The dashboard's aggregates (``GetStats``): counters per UTC hour, written as records are made.

``stats_by_day`` (see ``schema.py``) holds one counter per (day, hour, metric, key):

| metric | key | counts |
|---|---|---|
| ``recognitions`` | "" | records stored |
| ``digit`` | "0".."9" | digits read (each digit of a number) |
| ``confidence`` | "0".."9" | digits read by confidence decile ("9": 0.9 to 1.0) |
| ``model`` | a model version | records answered by it |
| ``labels`` | "" | records labelled for the first time |
| ``corrections`` | "" | of those, labels that differ from the model's answer |
| ``outcome`` | a problem type | uploads answered without a record (the gateway's reports) |

Counter increments are not idempotent, so they are never retried: a timed-out increment may or
may not have landed (the figures are approximate under failures, never inflated by our own
retries). The recorder increments only after a record is stored, not for an Idempotency-Key
replay, and not twice for the same record id on one replica (a retry of a call whose answer was
lost). The keys are bounded: digits, deciles, a fixed list of problem types, and model versions
(hex hashes; anything else is counted as "other").
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from digits.outcomes import UPLOAD_OUTCOMES
from services.recorder.paging import day_of, hour_of
from services.recorder.records import Record

MAX_DAYS = 31
DEFAULT_DAYS = 7
# Upload answers that store no record and that the gateway may report: its problem types.
OUTCOMES = UPLOAD_OUTCOMES
MAX_OUTCOME_COUNT = 1_000_000
_VERSION = re.compile(r"^[0-9a-f]{1,64}$")

Increments = dict[tuple[str, str], int]


def decile(confidence: float) -> str:
    return str(min(9, max(0, int(confidence * 10))))


def record_increments(record: Record) -> Increments:
    """The counters one stored record adds to."""
    out: Increments = collections.Counter()
    out["recognitions", ""] += 1
    readings = [(d, c) for d, c, *_ in record.readings] or [(record.digit, record.confidence)]
    for digit, confidence in readings:
        out["digit", str(digit)] += 1
        out["confidence", decile(confidence)] += 1
    out["model", record.model_version if _VERSION.match(record.model_version) else "other"] += 1
    return dict(out)


def label_increments(record: Record, number: str) -> Increments:
    """What a label adds: only the first label of a record counts (a relabel changes nothing)."""
    if record.labelled_at is not None:
        return {}
    predicted = record.number or str(record.digit)
    return {("labels", ""): 1, **({("corrections", ""): 1} if number != predicted else {})}


def invalid_outcomes(counts: dict[str, int]) -> str | None:
    if len(counts) > len(OUTCOMES):
        return f"at most {len(OUTCOMES)} outcomes a report"
    for slug, count in counts.items():
        if slug not in OUTCOMES:
            return f"{slug[:40]!r} is not an outcome that is counted"
        if not 1 <= count <= MAX_OUTCOME_COUNT:
            return f"the count of {slug} must be 1 to {MAX_OUTCOME_COUNT}"
    return None


def window(days: int, now: datetime) -> tuple[datetime, datetime]:
    """[since, until): the last ``days`` days in whole hours, the current hour included."""
    until = hour_of(now) + timedelta(hours=1)
    return until - timedelta(days=days), until


class Stats:
    def __init__(self, session: Session, ks: str, write_cl: int, read_cl: int) -> None:
        self._session = session
        self._write_cl = write_cl
        self._increment = session.prepare(
            f"UPDATE {ks}.stats_by_day SET value = value + ? WHERE day = ? AND hour = ? AND metric = ? AND key = ?"
        )
        self._increment.is_idempotent = False  # the driver must never retry it on another node
        self._select = session.prepare(
            f"SELECT hour, metric, key, value FROM {ks}.stats_by_day WHERE day = ? AND hour >= ? AND hour < ?"
        )
        self._select.consistency_level = read_cl
        self._select.is_idempotent = True

    def batch(self, increments: Increments, moment: datetime) -> BatchStatement | None:
        """One counter batch, a single partition (the day); None if there is nothing to add."""
        if not increments:
            return None
        batch = BatchStatement(batch_type=BatchType.COUNTER, consistency_level=self._write_cl)
        day, hour = day_of(moment), hour_of(moment)
        for (metric, key), n in sorted(increments.items()):
            batch.add(self._increment, [n, day, hour, metric, key])
        return batch

    def queries(self, since: datetime, until: datetime) -> Iterable[tuple[object, list[object]]]:
        """(statement, values) per UTC day of the window: at most MAX_DAYS + 1 partitions."""
        day = since.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        while day < until:
            yield self._select, [day.date(), max(day, since), min(day + timedelta(days=1), until)]
            day += timedelta(days=1)

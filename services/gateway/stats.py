"""GET /v1/stats: service-wide aggregates for the dashboard, from the recorder's counters.

Aggregates only (no record, user or image), for any valid token. The recorder keeps per-hour
counters written as records are made (services/recorder/stats.py), so a 31-day answer reads at
most 32 small Cassandra partitions, however many records there are.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from digits.v1 import recorder_pb2
from services.gateway import auth, problems
from services.gateway.backends import call
from services.gateway.config import Config

MAX_DAYS = 31


class Hour(BaseModel):
    hour: datetime = Field(description="Start of the UTC hour.")
    requests: int = Field(description="Uploads answered in it: recognitions plus refusals and failures.")
    recognitions: int
    refusals: int
    failures: int


class Bucket(BaseModel):
    lower: float
    upper: float
    count: int


class Stats(BaseModel):
    since: datetime = Field(description="Start of the window (inclusive), a whole UTC hour.")
    until: datetime = Field(description="End of the window (exclusive): the end of the current hour.")
    days: int
    requests: int = Field(description="Uploads: recognitions + refusals + failures.")
    recognitions: int = Field(description="Uploads answered with a recognition (and recorded).")
    refusals: int = Field(description="Uploads refused as the client's (4xx: not a digit, not an image, ...).")
    refusals_by_reason: dict[str, int] = Field(description="Refusals by problem type (`not-a-digit`, `no-digit-found`, ...).")
    failures: int = Field(description="Uploads that failed on our side (5xx).")
    failures_by_reason: dict[str, int]
    error_rate: float | None = Field(description="(refusals + failures) / requests; null without requests.")
    refusal_rate: float | None = Field(description="refusals / requests; null without requests.")
    labels: int = Field(description="Recognitions labelled by their owner (first label only).")
    corrections: int = Field(description="Of those, labels that differ from the model's answer.")
    correction_rate: float | None = Field(description="corrections / recognitions; null without recognitions.")
    digits: list[int] = Field(description="How often each digit 0-9 was read (each digit of a number).")
    confidence_histogram: list[Bucket] = Field(description="Digits read by confidence, in 10 buckets [lower, upper).")
    model_versions: dict[str, int] = Field(description="Recognitions by the model version that answered.")
    hourly: list[Hour] = Field(description="Every hour of the window, oldest first.")

    @classmethod
    def from_proto(cls, reply: recorder_pb2.GetStatsResponse, days: int) -> "Stats":
        since, until = (t.ToDatetime(tzinfo=timezone.utc) for t in (reply.since, reply.until))
        totals: Counter[tuple[str, str]] = Counter()
        hours: dict[datetime, Counter[str]] = {}
        for c in reply.counts:
            totals[c.metric, c.key] += c.value
            hour = hours.setdefault(c.hour.ToDatetime(tzinfo=timezone.utc), Counter())
            if c.metric == "recognitions":
                hour["recognitions"] += c.value
            elif c.metric == "outcome":
                hour["refusals" if _is_refusal(c.key) else "failures"] += c.value
        refusals = {k: v for (m, k), v in totals.items() if m == "outcome" and _is_refusal(k)}
        failures = {k: v for (m, k), v in totals.items() if m == "outcome" and not _is_refusal(k)}
        recognitions = totals["recognitions", ""]
        requests = recognitions + sum(refusals.values()) + sum(failures.values())
        hourly, at = [], since
        while at < until:  # dense: a chart needs the empty hours too
            h = hours.get(at, Counter())
            hourly.append(Hour(hour=at, requests=h["recognitions"] + h["refusals"] + h["failures"],
                               recognitions=h["recognitions"], refusals=h["refusals"], failures=h["failures"]))
            at += timedelta(hours=1)
        return cls(
            since=since, until=until, days=days, requests=requests, recognitions=recognitions,
            refusals=sum(refusals.values()), refusals_by_reason=refusals,
            failures=sum(failures.values()), failures_by_reason=failures,
            error_rate=_rate(requests - recognitions, requests), refusal_rate=_rate(sum(refusals.values()), requests),
            labels=totals["labels", ""], corrections=totals["corrections", ""],
            correction_rate=_rate(totals["corrections", ""], recognitions),
            digits=[totals["digit", str(d)] for d in range(10)],
            confidence_histogram=[Bucket(lower=i / 10, upper=(i + 1) / 10, count=totals["confidence", str(i)])
                                  for i in range(10)],
            model_versions={k: v for (m, k), v in totals.items() if m == "model"},
            hourly=hourly,
        )  # fmt: skip


def _is_refusal(slug: str) -> bool:
    kind = problems.TYPES.get(slug)
    return kind is not None and kind.status < 500


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def router(config: Config) -> APIRouter:
    routes = APIRouter(prefix="/v1/stats", tags=["stats"])

    @routes.get(
        "",
        response_model=Stats,
        responses=problems.responses(400, 401, 502, 503),
        dependencies=[auth.REQUIRED],
        summary="Service-wide aggregates of the last days (any valid token)",
        description="Requests per hour, digit distribution, confidence histogram, refusals by reason, error "
        "and correction rates, model versions. Aggregates only: nothing of any record. Counters are "
        "approximate when a dependency fails (see the README).",
    )
    async def get_stats(
        request: Request,
        days: int = Query(7, ge=1, le=MAX_DAYS, description=f"How many days back from now, 1 to {MAX_DAYS}."),
    ) -> Stats:
        reply = await call(
            "recorder",
            request.app.state.backends.recorder.GetStats,
            recorder_pb2.GetStatsRequest(days=days),
            config.read_timeout_seconds,
            auth.credentials(request),
        )
        return Stats.from_proto(reply, days)

    return routes

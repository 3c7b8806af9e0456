"""The RPCs people's feedback and the dashboard use: LabelRecognition, CountUploadOutcomes and
GetStats.

Counting a stored record happens in the background after its answer: its increments are added to
a tally (digits/tally.py) written once a period as one counter batch per UTC hour, so the
dashboard never adds a round trip to an upload, nor a counter write to each record, and a failed
write costs only counts (logged and measured).
"""

from __future__ import annotations

import collections
import logging
import time
from datetime import datetime, timezone

import grpc

from digits.tally import Tally
from digits.v1 import recorder_pb2
from services.recorder import failures, stats
from services.recorder.base import RecorderBase
from services.recorder.config import Config
from services.recorder.corrections import invalid_label
from services.recorder.metrics import ERRORS
from services.recorder.paging import hour_of
from services.recorder.records import Record, timestamp, to_proto, utc

log = logging.getLogger(__name__)

# Record ids counted lately on this replica: a retried Record whose first answer was lost.
_RECENT = 4096


class FeedbackRPCs(RecorderBase):
    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._tally: Tally[datetime] = Tally(self._write_counts, config.stats_flush_seconds)
        self._counted: collections.OrderedDict[str, None] = collections.OrderedDict()

    async def close(self) -> None:
        await self.finish_counting()  # while the session is still open
        await super().close()

    def count_record(self, record: Record, replayed: bool) -> None:
        """Add a stored record to the statistics (written in the background), once."""
        key = str(record.id)
        if replayed or key in self._counted:
            return
        self._counted[key] = None
        if len(self._counted) > _RECENT:
            self._counted.popitem(last=False)
        self._count(stats.record_increments(record), record.received_at)

    def _count(self, increments: stats.Increments, moment: datetime) -> None:
        self._tally.add(increments, hour_of(moment))

    async def finish_counting(self, seconds: float = 2.0) -> None:
        """On shutdown: write what is left of the tally (briefly) before the session closes."""
        await self._tally.close(seconds)

    async def _write_counts(self, hour: datetime, increments: stats.Increments) -> None:
        store = self._store
        assert store is not None  # counts follow a record or a label, which needed the store
        deadline = time.monotonic() + self._config.request_timeout_seconds
        try:
            await store.count(increments, hour, deadline)
        except Exception as exc:  # noqa: BLE001  (best-effort: dropped, never retried, as it may have landed)
            ERRORS.labels("count", failures.kind(exc)).inc()
            log.warning("could not count", extra={"error": str(exc), "hour": hour.isoformat(), "counters": len(increments)})

    async def LabelRecognition(self, request, context):  # type: ignore[no-untyped-def]
        record = await self._read(context, "label", request.id, include_image=False)
        if problem := invalid_label(request.number, record):
            await self._fail(context, "label", "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, problem,
                             "INVALID_LABEL")  # fmt: skip
        store = await self._require_store(context)
        try:
            labelled = await store.label(record, request.number, self._deadline(context))
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "label", exc, store.write_consistency)
        self._count(stats.label_increments(record, request.number), labelled.labelled_at)  # type: ignore[arg-type]
        log.info("labelled", extra={"id": str(record.id), "number": request.number})
        return recorder_pb2.LabelRecognitionResponse(recognition=to_proto(labelled))

    async def CountUploadOutcomes(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        counts = dict(request.counts)
        if problem := stats.invalid_outcomes(counts):
            await self._fail(context, "count", "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, problem,
                             "INVALID_OUTCOMES")  # fmt: skip
        increments = {("outcome", slug): n for slug, n in counts.items()}
        try:
            await store.count(increments, datetime.now(timezone.utc), self._deadline(context))
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "count", exc, store.write_consistency)
        return recorder_pb2.CountUploadOutcomesResponse()

    async def GetStats(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        principal = await self._principal(context, "stats")
        if principal is None:  # aggregates only, but not for the anonymous
            await self._deny(context, "stats", None, "reading the statistics")
        days = request.days or stats.DEFAULT_DAYS
        if not 1 <= days <= stats.MAX_DAYS:
            await self._fail(context, "stats", "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                             f"days must be 1 to {stats.MAX_DAYS}", "INVALID_QUERY")  # fmt: skip
        since, until = stats.window(days, datetime.now(timezone.utc))
        try:
            rows = await store.read_stats(since, until, self._deadline(context))
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "stats", exc, store.read_consistency)
        return recorder_pb2.GetStatsResponse(
            since=timestamp(since), until=timestamp(until),
            counts=[
                recorder_pb2.StatsCount(hour=timestamp(utc(r["hour"])), metric=r["metric"], key=r["key"], value=r["value"])
                for r in rows if r["value"]
            ],
        )  # fmt: skip


"""Recognition records in Cassandra, through the DataStax driver with prepared statements.

Writing records (see ``schema.py`` for the tables, ``rows.py`` for the rows):

1. the image chunks, each an idempotent single-partition INSERT (an image of at most
   ``rows.INLINE_IMAGE_BYTES``, most uploads, goes in the batch instead: one round trip);
2. then LOGGED BATCHes of the small rows, several records to a batch (``rows.batches``):
   ``recognitions``, ``recognitions_by_hour`` and, for a named user, ``recognitions_by_user_day``
   and ``user_days``; and ``recognition_hours`` if this process has not yet written a record to
   that hour and shard. The batch log makes Cassandra finish all of a batch once any of it is
   applied, so no listing ever shows a record that the others miss, and no record is in an
   (hour, shard) that the index does not list.

Every record is found through the batch's rows, which are written after the image, so a
record that can be found always has its image. A write that fails between the two steps
leaves only unreachable image chunks, which a retry (same ids) overwrites, and which expire
with the image retention period if no retry comes.

Every row of a record carries its receipt time as write timestamp (``USING TIMESTAMP``), and a
deletion a later one: a retry of the write that lands after the deletion is shadowed by it.
The image chunks and the client address carry the retention periods as TTLs.

Every value is deterministic (the id comes from the request, see ``ids.py``), so every
statement is an idempotent upsert: the driver may retry it on another node, and the recorder
retries timeouts itself while the caller's deadline allows.

The driver's futures complete on its own I/O thread; ``_result`` hands them to the asyncio
loop so the gRPC handlers never block a thread per query.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut, WriteTimeout, WriteType
from cassandra.cluster import ResponseFuture, Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from services.recorder import schema
from services.recorder.corrections import Corrections
from services.recorder.stats import Stats
from services.recorder.config import Config
from services.recorder.ids import to_millis
from services.recorder.listing import Listings
from services.recorder.metrics import BATCHLOG_FALLBACKS, CASSANDRA_SECONDS
from services.recorder.paging import Cursor, UserQuery, WindowQuery, day_of, hour_of, month_of
from services.recorder.records import Claim, Page, Record, from_row, is_whole, utc
from services.recorder.rows import TABLE_KEYS, RecordRows, batches, inline, write_timestamp



class DeadlineExceeded(Exception):
    """No time is left in the caller's deadline for another Cassandra query."""


log = logging.getLogger(__name__)

_COLUMNS = tuple(schema.RECORD_COLUMNS)
# Read: every column, the legacy ones included (records written by older versions); the
# listing tables were created after them and never had them.
_COLUMN_LIST = ", ".join((*_COLUMNS, *schema.LEGACY_COLUMNS))
_LISTED_COLUMN_LIST = ", ".join(_COLUMNS)
_DAY = 86_400
# (hour, shard) pairs this process has indexed; past this many it starts over (the price is
# one index row rewritten per pair).
_INDEXED_MAX = 4096


def _result(future: ResponseFuture) -> asyncio.Future:
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def resolve(rows):  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(rows))

    def fail(exc):  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(lambda: done.done() or done.set_exception(exc))

    future.add_callbacks(resolve, fail)
    return done


def _batch_log_failed(exc: Exception) -> bool:
    """The coordinator could not write the batch log: none of the batch was applied."""
    return isinstance(exc, WriteTimeout) and exc.write_type == WriteType.BATCH_LOG


class RecognitionStore:
    def __init__(self, session: Session, config: Config) -> None:
        self._session = session
        self._config = config
        self.write_consistency = config.write_consistency.upper()
        self.read_consistency = config.read_consistency.upper()
        ks = config.keyspace
        write_cl = ConsistencyLevel.name_to_value[self.write_consistency]
        read_cl = ConsistencyLevel.name_to_value[self.read_consistency]
        self._write_cl = write_cl

        def prepare(cql: str, consistency: int) -> PreparedStatement:
            statement = session.prepare(cql)
            statement.consistency_level = consistency
            # Every statement here reads, or upserts deterministic values: safe to retry.
            statement.is_idempotent = True
            return statement

        # A record's rows in every table (rows.py).
        self.rows = RecordRows(prepare, ks, write_cl)
        # The legacy tables too: a deletion removes a record's old copies (schema.py).
        legacy = {"recognitions_by_day": "day = ? AND id = ?",
                  "recognitions_by_user": "user = ? AND month = ? AND id = ?"}  # fmt: skip
        self._delete = {
            table: prepare(f"DELETE FROM {ks}.{table} USING TIMESTAMP ? WHERE {key}", write_cl)
            for table, key in {**TABLE_KEYS, **legacy, "images": "id = ?"}.items()
        }
        self._indexed: set[tuple[datetime, int]] = set()
        self._insert_token = prepare(
            f"INSERT INTO {ks}.tokens (token_hash, user, created_at) VALUES (?, ?, ?)", write_cl
        )
        self._select_token = prepare(f"SELECT user FROM {ks}.tokens WHERE token_hash = ?", read_cl)
        self._delete_token = prepare(f"DELETE FROM {ks}.tokens WHERE token_hash = ?", write_cl)
        self._claim = prepare(
            f"INSERT INTO {ks}.idempotency_keys (idempotency_key, request_id, received_at, fingerprint) "
            "VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
            write_cl,
        )
        # A lightweight transaction: its Paxos round runs at the serial level of the local DC.
        self._claim.serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL
        self._select = prepare(f"SELECT {_COLUMN_LIST} FROM {ks}.recognitions WHERE id = ?", read_cl)
        self._select_chunks = prepare(f"SELECT chunk, data FROM {ks}.images WHERE id = ?", read_cl)
        self._listings = Listings(lambda cql: prepare(cql, read_cl), ks, _LISTED_COLUMN_LIST)
        # Labels (corrections.py) and the dashboard's counters (stats.py), on the same session.
        self.corrections = Corrections(prepare, ks, write_cl)
        self.stats = Stats(session, ks, write_cl, read_cl)

    @classmethod
    def prepare(cls, session: Session, config: Config) -> "RecognitionStore":
        """The store on an open session: creates the schema first if configured to, then
        prepares every statement (InvalidRequest while the keyspace or a table is missing), then
        copies the legacy tables' records if that was never done (see ``legacy.py``)."""
        if not config.create_schema:
            return cls(session, config)
        from services.recorder import legacy  # it uses this module's store

        schema.create(session, config.keyspace, config.datacenters())
        store = cls(session, config)
        legacy.copy(session, config, store)
        return store

    # ---- queries, within the caller's deadline

    async def _execute(self, statement: Any, values: Sequence[Any], deadline: float) -> list[dict[str, Any]]:
        """One query, with the driver's timeout cut to what is left of ``deadline`` (monotonic)."""
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise DeadlineExceeded()
        timeout = min(self._config.request_timeout_seconds, left)
        rows = await _result(self._session.execute_async(statement, values, timeout=timeout))
        return list(rows or [])

    async def _write(self, statement: Any, values: Sequence[Any], deadline: float) -> None:
        """An idempotent write; timeouts are retried while the deadline allows.

        A write timeout usually means a replica died and the coordinator has not noticed yet
        (the failure detector needs several seconds); the next attempt, a little later, goes
        through once it has. Unavailable is not retried: the cluster already knows too few
        replicas are up, and the caller should hear it at once.
        """
        pause = 0.1
        while True:
            try:
                await self._execute(statement, values, deadline)
                return
            except (WriteTimeout, OperationTimedOut) as exc:
                if _batch_log_failed(exc) or deadline - time.monotonic() < pause + 0.25:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    # ---- writes

    async def claim(self, key: str, candidate: Claim, deadline: float) -> Claim:
        """Claim ``key`` with ``candidate``'s request, or learn who claimed it first.

        IF NOT EXISTS makes exactly one claim win, however many attempts race. A claim whose
        outcome is unknown (a timeout) is simply made again by the client's retry, which then
        finds its own first claim, or makes it.
        """
        values = [key, candidate.request_id, candidate.received_at, candidate.fingerprint,
                  self._config.idempotency_ttl_seconds]  # fmt: skip
        rows = await self._execute(self._claim, values, deadline)
        row = rows[0]
        if row["[applied]"]:
            return candidate
        return Claim(row["request_id"], utc(row["received_at"]), row["fingerprint"], first=False)

    async def record(self, records: Sequence[Record], deadline: float) -> None:
        """Store ``records`` (images included) at the write consistency level.

        Several records share a logged batch, up to ``BATCH_RECORDS`` and ``BATCH_BYTES``: at a
        few hundred records a second, Cassandra and the driver spend most of a lone record's cost
        on the request itself (waking threads, the batch log), so grouping halves Cassandra's
        CPU per record (see docs/capacity.md). Each batch is atomic; the call succeeds once all
        are stored.
        """
        started = time.perf_counter()
        ttl = self._config.image_retention_days * _DAY
        # A small image (a canvas drawing, a cropped scan) rides in the batch: one round trip
        # instead of two, and still atomic with the rows. Larger ones are written first.
        large = [r for r in records if not inline(r)]
        await asyncio.gather(
            *(self._write(statement, values, deadline) for r in large for statement, values in self.rows.chunks(r, ttl))
        )
        await asyncio.gather(*(self._write_rows(group, ttl, deadline) for group in batches(records)))
        CASSANDRA_SECONDS.labels("record", self.write_consistency).observe(time.perf_counter() - started)

    async def _write_rows(self, records: Sequence[Record], ttl: int, deadline: float) -> None:
        """One logged batch: every row of ``records``, and their images if small (``ttl``: the
        images' time to live)."""
        address_ttl = self._config.client_address_retention_days * _DAY
        keys = [(hour_of(r.received_at), schema.shard_of(r.id)) for r in records]  # (hour, shard)
        new_keys = set(keys) - self._indexed

        def batch(kind: BatchType) -> BatchStatement:
            rows = BatchStatement(batch_type=kind, consistency_level=self._write_cl)
            rows.is_idempotent = True
            indexed: set[tuple[datetime, int]] = set()
            for record, key in zip(records, keys):
                self.rows.add(rows, record, address_ttl, index=key in new_keys and key not in indexed)
                indexed.add(key)
                if inline(record):
                    rows.add(*self.rows.chunks(record, ttl)[0])
            return rows

        try:
            await self._write(batch(BatchType.LOGGED), (), deadline)
        except WriteTimeout as exc:
            if not _batch_log_failed(exc) or not self._config.batchlog_fallback:
                raise
            # Cassandra keeps a batch log on two other nodes and needs both to answer. Right
            # after a node dies, until the failure detector convicts it (10-20 s), it is still
            # picked, and every logged batch times out here before any row was applied. The
            # same rows without the batch log, at the same consistency level, are stored now;
            # only if this write too fails half-way can a listing show a record before its
            # other rows land, and the caller's retry (same ids) completes them.
            BATCHLOG_FALLBACKS.inc(len(records))
            log.warning("batch log unavailable; writing the records' rows without it",
                        extra={"ids": [str(r.id) for r in records]})  # fmt: skip
            await self._write(batch(BatchType.UNLOGGED), (), deadline)
        # Only once stored: until then every record of that (hour, shard) writes the index row.
        if len(self._indexed) + len(new_keys) > _INDEXED_MAX:
            self._indexed.clear()
        self._indexed |= new_keys

    async def delete(self, record: Record, deadline: float) -> None:
        """Remove ``record`` from every table and its image, in one logged batch: all or none.

        The deletion's timestamp is later than the record's rows', even for a receipt time a
        little in the future, so it shadows them and any retried write of them. The index rows
        (the user's day, the hour and shard) stay: an empty one only costs a listing one empty
        read.
        """
        started = time.perf_counter()
        stamp = max(int(time.time() * 1_000_000), write_timestamp(record.received_at) + 1)
        received, rid = record.received_at, record.id
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._write_cl)
        batch.is_idempotent = True
        batch.add(self._delete["recognitions"], [stamp, rid])
        batch.add(self._delete["recognitions_by_hour"], [stamp, hour_of(received), schema.shard_of(rid), rid])
        batch.add(self._delete["recognitions_by_day"], [stamp, day_of(received), rid])
        if record.user:
            batch.add(self._delete["recognitions_by_user_day"], [stamp, record.user, day_of(received), rid])
            batch.add(self._delete["recognitions_by_user"], [stamp, record.user, month_of(received), rid])
        batch.add(self._delete["images"], [stamp, rid])
        if record.labelled_at is not None:  # its correction goes with it
            batch.add(self.corrections.delete, [stamp, day_of(record.labelled_at), rid])
        await self._write(batch, (), deadline)
        CASSANDRA_SECONDS.labels("delete", self.write_consistency).observe(time.perf_counter() - started)

    # ---- labels and counters (corrections.py, stats.py)

    async def label(self, record: Record, number: str, deadline: float) -> Record:
        """Label ``record`` (overwriting any label); the record as it now is."""
        labelled_at = to_millis(datetime.now(timezone.utc))
        # After the record's rows (a retried upload never erases the label), before any deletion.
        stamp = max(int(time.time() * 1_000_000), write_timestamp(record.received_at) + 1)
        await self._write(self.corrections.batch(record, number, labelled_at, stamp), (), deadline)
        return dataclasses.replace(record, label_number=number, labelled_at=labelled_at)

    async def count(self, increments: dict[tuple[str, str], int], moment: datetime, deadline: float) -> None:
        batch = self.stats.batch(increments, moment)
        if batch is not None:
            await self._execute(batch, (), deadline)  # once: counter increments are not idempotent

    async def read_stats(self, since: datetime, until: datetime, deadline: float) -> list[dict[str, Any]]:
        days = self.stats.queries(since, until)
        parts = await asyncio.gather(*(self._execute(statement, values, deadline) for statement, values in days))
        return [row for rows in parts for row in rows]

    # ---- tokens

    async def add_token(self, digest: bytes, user: str, created_at: datetime, deadline: float) -> None:
        await self._write(self._insert_token, [digest, user, created_at], deadline)

    async def token_user(self, digest: bytes, deadline: float) -> str | None:
        rows = await self._execute(self._select_token, [digest], deadline)
        return rows[0]["user"] if rows else None

    async def remove_token(self, digest: bytes, deadline: float) -> None:
        await self._write(self._delete_token, [digest], deadline)

    # ---- reads

    async def get(self, record_id: uuid.UUID, deadline: float, include_image: bool = False) -> Record | None:
        started = time.perf_counter()
        if include_image:
            rows, image = await asyncio.gather(
                self._execute(self._select, [record_id], deadline), self._image(record_id, deadline)
            )
        else:
            rows, image = await self._execute(self._select, [record_id], deadline), None
        CASSANDRA_SECONDS.labels("get_image" if include_image else "get", self.read_consistency).observe(
            time.perf_counter() - started
        )
        if not rows or not is_whole(rows[0]):
            return None
        return from_row(rows[0], image)

    async def _image(self, record_id: uuid.UUID, deadline: float) -> bytes:
        rows = await self._execute(self._select_chunks, [record_id], deadline)
        return b"".join(row["data"] for row in sorted(rows, key=lambda r: r["chunk"]))

    async def list_by_user(self, query: UserQuery, cursor: Cursor | None, size: int, deadline: float) -> Page:
        return await self._list("list_by_user", self._listings.by_user, query, cursor, size, deadline)

    async def list_by_window(self, query: WindowQuery, cursor: Cursor | None, size: int, deadline: float) -> Page:
        return await self._list("list_by_window", self._listings.by_window, query, cursor, size, deadline)

    async def _list(self, operation: str, listing, query, cursor, size: int, deadline: float) -> Page:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        rows, after = await listing(lambda st, values: self._execute(st, values, deadline), query, cursor, size)
        CASSANDRA_SECONDS.labels(operation, self.read_consistency).observe(time.perf_counter() - started)
        return Page([from_row(row) for row in rows if is_whole(row)], after)

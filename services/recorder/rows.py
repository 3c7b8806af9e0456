"""A record's rows in every table (see ``schema.py``), and how records are grouped into logged
batches. ``store.py`` writes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cassandra.query import BatchStatement, BatchType, PreparedStatement

from services.recorder import schema
from services.recorder.paging import day_of, hour_of
from services.recorder.records import Record

# Images up to this size are written inside the record's batch: one round trip instead of two,
# and atomic with the rows. Larger ones are written first, chunk by chunk.
INLINE_IMAGE_BYTES = 3 * 1024
# Records in one logged batch, and its estimated size: under Cassandra's default refusal
# threshold (batch_sizefail_threshold, 50 KiB) with room to spare. Batches of several records
# pass the default warning threshold (5 KiB), which our Cassandra configuration raises to 40 KiB.
BATCH_RECORDS = 16
BATCH_BYTES = 32 * 1024

# Inserted with the row; the client address is set apart, with its own TTL. Not the label
# either: only labelling writes it, later (a null here would be a tombstone).
INSERTED = tuple(c for c in schema.RECORD_COLUMNS if c != "client_address" and c not in schema.LABEL_COLUMNS)
# Each table that holds a whole record, and its primary key.
TABLE_KEYS = {
    "recognitions": "id = ?",
    "recognitions_by_hour": "hour = ? AND shard = ? AND id = ?",
    "recognitions_by_user_day": "user = ? AND day = ? AND id = ?",
}


def write_timestamp(received_at: datetime) -> int:
    """A record's write timestamp (microseconds): its receipt time, the same on every retry."""
    return int(received_at.timestamp() * 1_000_000)


def inline(record: Record) -> bool:
    """Whether the record's image rides in its batch."""
    return len(record.image or b"") <= INLINE_IMAGE_BYTES


def batch_bytes(record: Record) -> int:
    """About what the record adds to a batch's size as Cassandra counts it (its values and their
    cells), generously: a copy of its columns in each table that holds it, and its image if it
    rides along. A typical upload's rows are ~1.1 KiB (Cassandra's own count: 16 with a 2 KB
    image each made a 48.6 KiB batch); one with every text at its longest and 12 digits, ~6 KiB."""
    text = (len(record.filename) + len(record.content_type) + len(record.user) + len(record.model_version)
            + len(record.number) + len(record.client_address))  # fmt: skip
    copies = 3 if record.user else 2
    return 2 * copies * (200 + text + 24 * len(record.readings)) + (len(record.image or b"") if inline(record) else 0)


def batches(records: Sequence[Record]) -> list[list[Record]]:
    """``records`` in order, cut into logged batches of at most BATCH_RECORDS and about BATCH_BYTES."""
    cut: list[list[Record]] = []
    size = 0
    for record in records:
        cost = batch_bytes(record)
        if not cut or len(cut[-1]) >= BATCH_RECORDS or size + cost > BATCH_BYTES:
            cut.append([])
            size = 0
        cut[-1].append(record)
        size += cost
    return cut


class RecordRows:
    """The prepared statements that write a record, given ``prepare(cql, consistency)``."""

    def __init__(self, prepare: Callable[[str, int], PreparedStatement], ks: str, write_cl: int) -> None:
        columns = ", ".join(INSERTED)
        marks = ", ".join("?" * len(INSERTED))
        written = "USING TIMESTAMP ?"
        self._write_cl = write_cl
        self._chunk = prepare(
            f"INSERT INTO {ks}.images (id, chunk, data) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?", write_cl
        )
        self._record = prepare(f"INSERT INTO {ks}.recognitions ({columns}) VALUES ({marks}) {written}", write_cl)
        self._by_hour = prepare(
            f"INSERT INTO {ks}.recognitions_by_hour (hour, shard, {columns}) VALUES (?, ?, {marks}) {written}", write_cl
        )
        self._hour = prepare(f"INSERT INTO {ks}.recognition_hours (day, hour, shard) VALUES (?, ?, ?) {written}", write_cl)
        self._by_user = prepare(
            f"INSERT INTO {ks}.recognitions_by_user_day (day, {columns}) VALUES (?, {marks}) {written}", write_cl
        )
        self._user_day = prepare(f"INSERT INTO {ks}.user_days (user, day) VALUES (?, ?) {written}", write_cl)
        self._address = {
            table: prepare(f"UPDATE {ks}.{table} USING TTL ? AND TIMESTAMP ? SET client_address = ? WHERE {key}", write_cl)
            for table, key in TABLE_KEYS.items()
        }

    def chunks(self, record: Record, ttl: int) -> list[tuple[PreparedStatement, list[Any]]]:
        """The image's chunks, each a statement and its values."""
        image, stamp = record.image or b"", write_timestamp(record.received_at)
        size = schema.IMAGE_CHUNK_BYTES
        return [(self._chunk, [record.id, n, image[i : i + size], ttl, stamp]) for n, i in enumerate(range(0, len(image), size))]

    def batch(
        self, record: Record, batch_type: BatchType, address_ttl: int, index: bool, listings_only: bool = False
    ) -> BatchStatement:
        """The record's rows, in a batch of their own (see ``add``)."""
        batch = BatchStatement(batch_type=batch_type, consistency_level=self._write_cl)
        batch.is_idempotent = True
        self.add(batch, record, address_ttl, index, listings_only)
        return batch

    def add(
        self, batch: BatchStatement, record: Record, address_ttl: int, index: bool, listings_only: bool = False
    ) -> None:
        """Add the record's rows for every query to ``batch``, each written at its receipt time.

        ``address_ttl`` is the client address's TTL in seconds (0: none); ``index`` adds the time
        log's index row; ``listings_only`` leaves out the ``recognitions`` row (the legacy copy:
        it exists already).
        """
        values = [record.probabilities if name == "scores" else getattr(record, name) for name in INSERTED]
        stamp = write_timestamp(record.received_at)
        address = [address_ttl, stamp, record.client_address]
        hour, shard, day = hour_of(record.received_at), schema.shard_of(record.id), day_of(record.received_at)
        # No address (none given, or expired before a copy): nothing to set.
        has_address = bool(record.client_address)
        if not listings_only:
            batch.add(self._record, [*values, stamp])
            if has_address:
                batch.add(self._address["recognitions"], [*address, record.id])
        batch.add(self._by_hour, [hour, shard, *values, stamp])
        if has_address:
            batch.add(self._address["recognitions_by_hour"], [*address, hour, shard, record.id])
        if index:
            batch.add(self._hour, [day, hour, shard, stamp])
        if record.user:
            batch.add(self._by_user, [day, *values, stamp])
            if has_address:
                batch.add(self._address["recognitions_by_user_day"], [*address, record.user, day, record.id])
            batch.add(self._user_day, [record.user, day, stamp])

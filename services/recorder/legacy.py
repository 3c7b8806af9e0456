"""The one-off copy of records from the legacy listing tables into the bucketed ones.

Versions before the time log was bucketed by (hour, shard) and user histories by (user, day)
wrote ``recognitions_by_day`` (partition = day) and ``recognitions_by_user`` (partition =
(user, month)); see ``schema.py`` for why that stopped. ``copy`` reads ``recognitions_by_day``
page by page (the driver fetches ``PAGE_ROWS`` rows at a time, so the table is never in memory
at once) and writes each record's rows in the new tables with the record writer's own batch
(``RecognitionStore.rows``), minus the ``recognitions`` row, which exists already:

- one scan is enough: both legacy tables were always written in the same logged batch and
  deleted in the same one, so every row of ``recognitions_by_user`` has its twin in
  ``recognitions_by_day``, which also carries the user;
- every row is written at the record's own write timestamp (its receipt time, exactly as the
  writer does), so the copy and any retry of the original upload are the same write, and a
  deletion (always later) shadows both: a record deleted before the copy is not in the scan, one
  deleted during or after it stays deleted;
- the client address keeps its remaining TTL (read with the row), so the copy does not extend
  its retention; probabilities of the oldest records (the legacy non-frozen ``probabilities``
  column) are written to ``scores``, which is what a rewrite must use (CASSANDRA-11368).

When the scan has been copied whole, a row in ``data_migrations`` says so, and later runs (each
``python -m services.recorder.migrate``, and each recorder start with RECORDER_CREATE_SCHEMA
on) skip the copy. A run that fails part-way leaves no such row; the next one copies
everything again, which rewrites identical cells. Rows that a recorder of the old version
writes after the copy (during a rolling upgrade whose hook ran before the old pods were gone)
are copied by ``python -m services.recorder.migrate --copy-again``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from cassandra import ConsistencyLevel
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchType, SimpleStatement

from services.recorder import schema
from services.recorder.config import Config
from services.recorder.paging import hour_of
from services.recorder.records import from_row

if TYPE_CHECKING:
    from cassandra.cluster import Session

    from services.recorder.store import RecognitionStore

log = logging.getLogger(__name__)

NAME = "recognitions_by_day -> recognitions_by_hour, recognitions_by_user_day"
PAGE_ROWS = 500
CONCURRENCY = 32  # batches in flight: enough to keep a small cluster busy, not to swamp it
_COLUMNS = ", ".join((*schema.RECORD_COLUMNS, *schema.LEGACY_COLUMNS))


def copied(session: Session, keyspace: str) -> bool:
    """Whether a copy has finished in ``keyspace``."""
    rows = session.execute(f"SELECT copied FROM {keyspace}.data_migrations WHERE name = %s", [NAME], timeout=60)
    return rows.one() is not None


def copy(session: Session, config: Config, store: RecognitionStore, again: bool = False) -> int | None:
    """Copy the legacy rows (blocking); the number copied, or None when an earlier run had."""
    ks = config.keyspace
    if not again and copied(session, ks):
        return None
    started = time.monotonic()
    scan = SimpleStatement(
        f"SELECT {_COLUMNS}, TTL(client_address) AS address_ttl FROM {ks}.recognitions_by_day",
        fetch_size=PAGE_ROWS,
        consistency_level=ConsistencyLevel.name_to_value[config.read_consistency.upper()],
    )
    count, indexed, pending = 0, set(), []
    for row in session.execute(scan, timeout=60):
        record = from_row(row)
        key = (hour_of(record.received_at), schema.shard_of(record.id))
        address_ttl = row["address_ttl"] or 0  # what is left of it (None: no TTL, or no address)
        pending.append(store.rows.batch(record, BatchType.LOGGED, address_ttl, key not in indexed, listings_only=True))
        indexed.add(key)
        if len(pending) == PAGE_ROWS:
            count += _write(session, pending)
            pending = []
            log.info("copying legacy records", extra={"keyspace": ks, "copied": count})
    count += _write(session, pending)
    session.execute(
        f"INSERT INTO {ks}.data_migrations (name, finished_at, copied) VALUES (%s, %s, %s)",
        [NAME, datetime.now(timezone.utc), count],
        timeout=60,
    )
    log.info(
        "copied the legacy records into the bucketed tables",
        extra={"keyspace": ks, "copied": count, "seconds": round(time.monotonic() - started, 1)},
    )
    return count


def _write(session: Session, batches: list) -> int:  # type: ignore[type-arg]
    # raise_on_first_error: a failed copy must not be marked done; the next run redoes it all.
    execute_concurrent(session, [(b, None) for b in batches], concurrency=CONCURRENCY, raise_on_first_error=True)
    return len(batches)

"""The Cassandra schema: one table per query, applied idempotently.

Tables (``<ks>`` is the configured keyspace):

- ``recognitions``: one row per record, by id: everything but the image bytes.
- ``images``: the image bytes, once, in chunks of at most ``IMAGE_CHUNK_BYTES``; a partition
  per record, so bounded by the recorder's image size limit.
- ``recognitions_by_hour``: the time log, newest first; partition = (UTC hour, shard).
- ``recognition_hours``: which (hour, shard) partitions of a UTC day hold records; partition =
  day, at most 24 x ``SHARDS`` rows.
- ``recognitions_by_user_day``: a user's history, newest first; partition = (user, UTC day).
- ``user_days``: which days a user has records on, newest first (at most 366 rows a year).
- ``idempotency_keys``: which request (request id, received_at) first claimed an
  Idempotency-Key, and a fingerprint of who uploaded what; claimed with a lightweight
  transaction, kept for a day (TTL).
- ``tokens``: the SHA-256 of each user token an admin issued, and whose it is.
- ``data_migrations``: which one-off copies of data (see ``legacy.py``) have finished.
- ``corrections_by_day``: every labelled record (``LabelRecognition``), partition = the UTC day
  it was labelled, so ``export_corrections`` pages day by day without a scan; a relabel on
  another day moves the row, a deletion removes it. Bounded by a day's labels.
- ``stats_by_day``: counters for ``GetStats``, partition = UTC day, rows (hour, metric, key):
  recognitions, digits read, confidence deciles, model versions, labels and corrections, and the
  uploads answered without a record by problem type. Written as records are made, so the
  dashboard reads at most 31 small partitions, never the records. **Counter increments are not
  idempotent**: a replayed upload (same Idempotency-Key) and a retry that reaches the same
  replica are not counted again, a timed-out increment is not retried (it may or may not have
  landed), so the figures are approximate under failures; a deletion does not uncount.
- Legacy, no longer written or listed: ``recognitions_by_day`` (partition = day),
  ``recognitions_by_user`` (partition = (user, month)) and ``user_months``. ``legacy.py``
  copies their rows into the tables above once. They are kept, not dropped, so that a rollback
  still finds its data and nothing is lost if the copy is interrupted; a deletion still removes
  a record's rows from them, so a deleted record is gone from every table.

Why these partitions (rows are ~250 bytes without the image; Cassandra's guidance is a partition
below ~100 MB, ideally ~100k rows):

- **The time log, (hour, shard).** A day partition put every write of a day on the same
  replicas whatever the cluster's size, and grew with the total rate (86 M rows a day at 1,000
  uploads/s). Now a record goes to hour ``hour_of(received_at)`` and shard ``shard_of(id)``, a
  hash of its id mod ``SHARDS`` = 32. The design rate is 1,000 uploads/s: 3.6 M rows an hour,
  112k rows (~28 MB) a partition; a partition stays below 100 MB up to ~3,500 uploads/s (and
  below 100k rows up to ~900/s). At any moment writes go to 32 partitions at random places on
  the ring, so they spread over every node of a cluster of up to ~16 nodes (with RF 3 a node of
  16 misses all 32 partitions with probability (13/16)^32 ~ 0.1%), and a new hour moves them
  elsewhere. Fewer shards leave partitions past 100k rows at the design rate; more would only
  add queries to a listing: reading an hour merges its shards (see ``listing.py``). Day buckets
  would need ~860 shards.
- **Empty hours cost nothing.** ``recognition_hours`` lists the (hour, shard) partitions that
  exist, so a window listing reads one index partition per day (at most 32 days) and then only
  partitions that hold records. Each recorder process writes an index row in the batch of the
  first record it stores in that (hour, shard), and remembers it: the index's day partition
  takes 32 writes an hour per process, not every write (it would be a new hot spot).
- **The shard count is fixed for the data already written**: a deletion finds a record's
  partition by recomputing ``shard_of(id)``, so changing ``SHARDS`` would leave old rows
  undeletable. Reads do not depend on it (they read the shards the index lists). Another count
  takes a new table and a copy like ``legacy.py``'s.
- **A user's history, (user, day).** Month buckets held a user's month: 26 M rows (6.5 GB) for
  a client uploading at 10/s. Day buckets bound a partition by one user's daily rate: the
  design bound is 1 upload/s sustained per user, 86k rows (~22 MB) a day; a person uploads far
  less (one a minute is 1,440 a day). A single user faster than that for long needs a per-token
  rate limit at the ingress (see the README) rather than shards, which would make every history
  page fan out. Users are the partition key, so different users' writes already spread over
  the ring. A listing reads ``user_days`` (one small partition per user) and then up to 8 days
  at once, so a sparse history does not cost a round trip per day.
- ``images`` is one partition per record, ``idempotency_keys`` and ``tokens`` one row per key:
  bounded by construction.

Every row of a record is written with the record's receipt time as its write timestamp, so a
deletion (a later timestamp) is final: a retried write of the same record arriving after it
stays hidden. Images and client addresses carry a TTL: the retention period.

The ``recognitions*`` rows of a record and its index rows are written in one logged batch (see
``store.py``), so a query never sees half a record.

Applying is idempotent: CREATE ... IF NOT EXISTS, columns that an older version of a table
lacks are added, and the keyspace's replication is altered when it differs from the wanted one.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Mapping

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DATACENTER = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

# Below Cassandra's limits on a single mutation (half a commit log segment: 4 MiB with the
# test clusters' 8 MiB segments) and on native protocol frames, whatever the image size.
IMAGE_CHUNK_BYTES = 512 * 1024

# Partitions of the time log per hour: see the docstring. Never change it for a keyspace that
# holds data (deletions recompute it).
SHARDS = 32


def shard_of(record_id: uuid.UUID) -> int:
    """The time-log shard of a record: a stable hash of its id, the same in every process."""
    return int.from_bytes(hashlib.sha256(record_id.bytes).digest()[:4], "big") % SHARDS

# Every column of a record except the image; shared by the record's table and its listings.
RECORD_COLUMNS: dict[str, str] = {
    "id": "timeuuid",
    "request_id": "uuid",
    "digit": "int",
    "confidence": "float",
    # Frozen: written whole, as one cell. A non-frozen list rewritten with the same write
    # timestamp (every retry of a record is) would append its elements again.
    "scores": "frozen<list<float>>",
    "model_version": "text",
    "user": "text",
    "content_type": "text",
    "filename": "text",
    "image_size": "bigint",
    "client_address": "text",
    "received_at": "timestamp",
    # Every digit read, left to right, and each one's (digit, confidence, x, y, width, height):
    # added for images holding a number; null in older records (their digit is the answer).
    "number": "text",
    "readings": "frozen<list<frozen<tuple<int, float, int, int, int, int>>>>",
    # The true digits as the owner said (LabelRecognition), and when: written by an UPDATE at
    # labelling time, never by the record's own write (see LABEL_COLUMNS); null when unlabelled.
    "label_number": "text",
    "labelled_at": "timestamp",
}
# Written only by labelling (a later write timestamp than the record's), never with the record.
LABEL_COLUMNS = ("label_number", "labelled_at")
# Columns older versions wrote and reads still fall back to; never written any more.
LEGACY_COLUMNS: dict[str, str] = {"probabilities": "list<float>"}


def replication_map(datacenters: Mapping[str, int]) -> dict[str, str]:
    """The keyspace's replication as Cassandra reports it in system_schema.keyspaces."""
    if not datacenters:
        raise ValueError("at least one datacenter needs replicas")
    for dc, rf in datacenters.items():
        if not _DATACENTER.match(dc):
            raise ValueError(f"invalid datacenter name {dc!r}")
        if rf < 1:
            raise ValueError(f"replication factor for {dc} must be at least 1, not {rf}")
    return {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
        **{dc: str(rf) for dc, rf in datacenters.items()},
    }


def _replication_cql(datacenters: Mapping[str, int]) -> str:
    replication_map(datacenters)  # validates
    pairs = ", ".join(f"'{dc}': {rf}" for dc, rf in datacenters.items())
    return f"{{'class': 'NetworkTopologyStrategy', {pairs}}}"


def _table(keyspace: str, name: str, columns: Mapping[str, str], key: str, order: str = "") -> str:
    body = ",\n    ".join(f"{column} {kind}" for column, kind in columns.items())
    options = f" WITH CLUSTERING ORDER BY ({order})" if order else ""
    return f"CREATE TABLE IF NOT EXISTS {keyspace}.{name} (\n    {body},\n    PRIMARY KEY ({key})\n){options}"


def tables() -> dict[str, dict[str, str]]:
    """Table name -> column -> CQL type (the key columns included)."""
    return {
        "recognitions": {**RECORD_COLUMNS, **LEGACY_COLUMNS},
        "images": {"id": "timeuuid", "chunk": "int", "data": "blob"},
        "recognitions_by_hour": {**RECORD_COLUMNS, "hour": "timestamp", "shard": "int"},
        "recognition_hours": {"day": "date", "hour": "timestamp", "shard": "int"},
        "recognitions_by_user_day": {**RECORD_COLUMNS, "day": "date"},
        "user_days": {"user": "text", "day": "date"},
        "idempotency_keys": {
            "idempotency_key": "text", "request_id": "uuid", "received_at": "timestamp", "fingerprint": "blob",
        },
        "tokens": {"token_hash": "blob", "user": "text", "created_at": "timestamp"},
        "data_migrations": {"name": "text", "finished_at": "timestamp", "copied": "bigint"},
        "corrections_by_day": {
            "day": "date", "id": "timeuuid", "number": "text", "predicted": "text", "model_version": "text",
            "user": "text", "labelled_at": "timestamp",
        },
        "stats_by_day": {"day": "date", "hour": "timestamp", "metric": "text", "key": "text", "value": "counter"},
        # Legacy (see the docstring): read once by legacy.py, deleted from, never written.
        "recognitions_by_user": {**RECORD_COLUMNS, **LEGACY_COLUMNS, "month": "date"},
        "user_months": {"user": "text", "month": "date"},
        "recognitions_by_day": {**RECORD_COLUMNS, **LEGACY_COLUMNS, "day": "date"},
    }  # fmt: skip


def statements(keyspace: str, datacenters: Mapping[str, int]) -> list[str]:
    """CQL to create the keyspace and tables; identifiers are validated, never interpolated raw."""
    if not _IDENTIFIER.match(keyspace):
        raise ValueError(f"invalid keyspace name {keyspace!r}")
    t = tables()
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {_replication_cql(datacenters)}",
        _table(keyspace, "recognitions", t["recognitions"], "id"),
        _table(keyspace, "images", t["images"], "id, chunk"),
        # Partition sizes and shard count: see the docstring.
        _table(keyspace, "recognitions_by_hour", t["recognitions_by_hour"], "(hour, shard), id", "id DESC"),
        _table(keyspace, "recognition_hours", t["recognition_hours"], "day, hour, shard", "hour DESC, shard ASC"),
        _table(keyspace, "recognitions_by_user_day", t["recognitions_by_user_day"], "(user, day), id", "id DESC"),
        _table(keyspace, "user_days", t["user_days"], "user, day", "day DESC"),
        # One row per key, written with a TTL: the first upload that claimed it.
        _table(keyspace, "idempotency_keys", t["idempotency_keys"], "idempotency_key"),
        _table(keyspace, "tokens", t["tokens"], "token_hash"),
        _table(keyspace, "data_migrations", t["data_migrations"], "name"),
        # A day's labels (by labelling time): the export reads day by day, never a scan.
        _table(keyspace, "corrections_by_day", t["corrections_by_day"], "day, id", "id DESC"),
        # Counters: at most 24 hours x ~40 (metric, key) rows a day partition.
        _table(keyspace, "stats_by_day", t["stats_by_day"], "day, hour, metric, key"),
        _table(keyspace, "recognitions_by_user", t["recognitions_by_user"], "(user, month), id", "id DESC"),
        _table(keyspace, "user_months", t["user_months"], "user, month", "month DESC"),
        _table(keyspace, "recognitions_by_day", t["recognitions_by_day"], "day, id", "id DESC"),
    ]


def create(session, keyspace: str, datacenters: Mapping[str, int]) -> None:  # type: ignore[no-untyped-def]
    """Apply the schema and wait until every node agrees on it (blocking, idempotent)."""
    for statement in statements(keyspace, datacenters):
        session.execute(statement, timeout=60)
    _wait_agreement(session)
    _converge(session, keyspace, datacenters)


def _converge(session, keyspace: str, datacenters: Mapping[str, int]) -> None:  # type: ignore[no-untyped-def]
    """Bring an existing keyspace to the wanted replication and columns."""
    row = session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [keyspace], timeout=60
    ).one()
    current = dict(row[0] if isinstance(row, tuple) else row["replication"])
    if current != replication_map(datacenters):
        log.warning(
            "changing keyspace replication; run `nodetool repair` on every node afterwards",
            extra={"keyspace": keyspace, "from": current, "to": replication_map(datacenters)},
        )
        session.execute(f"ALTER KEYSPACE {keyspace} WITH replication = {_replication_cql(datacenters)}", timeout=60)
    changed = False
    for table, columns in tables().items():
        rows = session.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
            [keyspace, table],
            timeout=60,
        )
        existing = {r[0] if isinstance(r, tuple) else r["column_name"] for r in rows}
        for column, kind in columns.items():
            if column not in existing:
                log.info("adding column", extra={"table": f"{keyspace}.{table}", "column": column})
                session.execute(f"ALTER TABLE {keyspace}.{table} ADD {column} {kind}", timeout=60)
                changed = True
    if changed:
        _wait_agreement(session)


def _wait_agreement(session) -> None:  # type: ignore[no-untyped-def]
    if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=60):
        raise RuntimeError("Cassandra nodes did not agree on the schema within 60 s")

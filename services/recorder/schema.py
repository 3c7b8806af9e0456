"""The Cassandra schema: one table per query, applied idempotently.

Tables (``<ks>`` is the configured keyspace):

- ``recognitions``: one row per record, by id: everything but the image bytes.
- ``images``: the image bytes, once, in chunks of at most ``IMAGE_CHUNK_BYTES``; a partition
  per record, so bounded by the recorder's image size limit.
- ``recognitions_by_user``: a user's history, newest first; partition = (user, month).
- ``user_months``: which months a user has records in, newest first (at most 12 rows a year),
  so paging a history never probes empty months.
- ``recognitions_by_day``: everything received on one UTC day, newest first; partition = day.
- ``idempotency_keys``: which request (request id, received_at) first claimed an
  Idempotency-Key, and a fingerprint of who uploaded what; claimed with a lightweight
  transaction, kept for a day (TTL).
- ``tokens``: the SHA-256 of each user token an admin issued, and whose it is.

Every row of a record is written with the record's receipt time as its write timestamp, so a
deletion (a later timestamp) is final: a retried write of the same record arriving after it
stays hidden. Images and client addresses carry a TTL: the retention period.

The three ``recognitions*`` rows and the ``user_months`` row of a record are written in one
logged batch (see ``store.py``), so a query never sees half a record.

Applying is idempotent: CREATE ... IF NOT EXISTS, columns that an older version of a table
lacks are added, and the keyspace's replication is altered when it differs from the wanted one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DATACENTER = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

# Below Cassandra's limits on a single mutation (half a commit log segment: 4 MiB with the
# test clusters' 8 MiB segments) and on native protocol frames, whatever the image size.
IMAGE_CHUNK_BYTES = 512 * 1024

# Every column of a record except the image; shared by the three denormalised tables.
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
}
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
        "recognitions_by_user": {**RECORD_COLUMNS, **LEGACY_COLUMNS, "month": "date"},
        "user_months": {"user": "text", "month": "date"},
        "recognitions_by_day": {**RECORD_COLUMNS, **LEGACY_COLUMNS, "day": "date"},
        "idempotency_keys": {
            "idempotency_key": "text", "request_id": "uuid", "received_at": "timestamp", "fingerprint": "blob",
        },
        "tokens": {"token_hash": "blob", "user": "text", "created_at": "timestamp"},
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
        # Month buckets: a year of a heavy user (one upload a minute) is ~44k rows a partition.
        _table(keyspace, "recognitions_by_user", t["recognitions_by_user"], "(user, month), id", "id DESC"),
        _table(keyspace, "user_months", t["user_months"], "user, month", "month DESC"),
        # Day buckets: ~250 bytes a row without the image, so 100 MB (a comfortable partition)
        # holds ~400k records a day, a sustained ~5 records/s.
        _table(keyspace, "recognitions_by_day", t["recognitions_by_day"], "day, id", "id DESC"),
        # One row per key, written with a TTL: the first upload that claimed it.
        _table(keyspace, "idempotency_keys", t["idempotency_keys"], "idempotency_key"),
        _table(keyspace, "tokens", t["tokens"], "token_hash"),
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

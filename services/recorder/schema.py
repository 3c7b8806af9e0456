"""The Cassandra schema, created idempotently (every statement is IF NOT EXISTS)."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def statements(keyspace: str, replication_factor: int, datacenter: str) -> list[str]:
    """CQL to create the keyspace and tables; identifiers are validated, never interpolated raw."""
    if not _IDENTIFIER.match(keyspace):
        raise ValueError(f"invalid keyspace name {keyspace!r}")
    if not _IDENTIFIER.match(datacenter.lower().replace("-", "_")) or "'" in datacenter:
        raise ValueError(f"invalid datacenter name {datacenter!r}")
    if replication_factor < 1:
        raise ValueError("replication factor must be at least 1")
    return [
        f"""CREATE KEYSPACE IF NOT EXISTS {keyspace}
            WITH replication = {{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}""",
        # One row per recognition, image included, looked up by its id.
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.recognitions (
            id timeuuid PRIMARY KEY,
            request_id uuid,
            digit int,
            confidence float,
            probabilities list<float>,
            model_version text,
            user text,
            image blob,
            content_type text,
            filename text,
            image_size bigint,
            client_address text,
            received_at timestamp
        )""",
    ]


def create(session, keyspace: str, replication_factor: int, datacenter: str) -> None:  # type: ignore[no-untyped-def]
    """Apply the schema and wait until every node agrees on it (blocking)."""
    for statement in statements(keyspace, replication_factor, datacenter):
        session.execute(statement, timeout=60)
    if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=60):
        raise RuntimeError("Cassandra nodes did not agree on the schema within 60 s")

"""Record ids: time-based UUIDs that a retried request maps to again.

The id is a version 1 UUID whose time is the moment the upload was received and whose other
62 bits (clock sequence and node) come from a hash of the client's request id. A retry carries
the same request id and the same received_at, so it gets the same id and rewrites identical
rows: idempotent without a lightweight transaction (no Paxos round trips, no read before
write). Two different requests received in the same millisecond differ in those 62 bits, so
they never overwrite each other.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

from cassandra.util import uuid_from_time

# RFC 4122 §4.5: a node id that is not a MAC address has the multicast bit set.
_MULTICAST = 1 << 40


def to_millis(moment: datetime) -> datetime:
    """``moment`` in UTC, truncated to what a Cassandra timestamp keeps (milliseconds)."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def record_id(received_at: datetime, request_id: uuid.UUID) -> uuid.UUID:
    """The id of the record made by ``request_id``, received at ``received_at``."""
    digest = hashlib.sha256(b"digits.recorder.v1:" + request_id.bytes).digest()
    clock_seq = int.from_bytes(digest[:2], "big") & 0x3FFF
    node = int.from_bytes(digest[2:8], "big") | _MULTICAST
    return uuid_from_time(to_millis(received_at), node=node, clock_seq=clock_seq)


def id_time(record_id: uuid.UUID) -> datetime:
    """The time encoded in a version 1 UUID."""
    if record_id.version != 1:
        raise ValueError(f"{record_id} is not a time-based (version 1) UUID")
    micros = (record_id.time - 0x01B21DD213814000) // 10
    return datetime.fromtimestamp(micros // 1_000_000, timezone.utc).replace(microsecond=micros % 1_000_000)

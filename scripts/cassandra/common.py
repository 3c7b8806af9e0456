"""What every part of the package shares: the version, the addresses' ports, the error type."""

from __future__ import annotations

import sys

CASSANDRA_VERSION = "5.0.8"
CQL_PORT = 9042
STORAGE_PORT = 7000
DATACENTER = "datacenter1"  # what SimpleSnitch reports; clients use it as their local DC


class CassandraError(RuntimeError):
    """Installing, starting or stopping Cassandra failed; the message says why and what to do."""


def say(message: str) -> None:
    # stderr, so that `status` output on stdout stays machine-readable.
    print(f"cassandra: {message}", file=sys.stderr, flush=True)

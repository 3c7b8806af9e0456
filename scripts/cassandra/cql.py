"""Short-lived admin sessions on one node, through the DataStax driver.

Readiness probes and the auth set-up each need a handful of statements on one particular
node, so every session here is pinned to one host (WhiteListRoundRobinPolicy), skips the
schema and token metadata a probe has no use for (that keeps a probe at a few tens of ms),
and is shut down on exit, so no driver threads outlive it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cassandra import ConsistencyLevel, DriverException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.protocol import ErrorMessage
from cassandra.query import SimpleStatement

from digits.cql import login_refused
from scripts.cassandra.common import CQL_PORT

Credentials = tuple[str, str]

# Everything a session can raise because of the node rather than a bug here: unreachable,
# still starting, refusing the login, or answering with an error.
CQL_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    NoHostAvailable,
    DriverException,
    ConnectionException,
    ErrorMessage,
)
ALL, ONE, QUORUM = ConsistencyLevel.ALL, ConsistencyLevel.ONE, ConsistencyLevel.QUORUM


class _QuietDriver:
    """Raise the ``cassandra`` loggers to CRITICAL while any session of ours is open.

    The driver logs each failed connection at WARNING and ERROR with a traceback (from the
    caller's thread and from its shared event-loop thread) and each server warning (e.g. a
    GRANT that was already granted), while a probe expects failures and reports them by
    raising. The level is process-wide, so other driver users in the same process lose their
    log lines for as long as a session here is open: tens of ms per probe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = logging.NOTSET
        self._logger = logging.getLogger("cassandra")

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = self._logger.level
                self._logger.setLevel(logging.CRITICAL)
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._logger.setLevel(self._saved)


_quiet = _QuietDriver()


def _cluster(host: str, credentials: Credentials | None, timeout: float) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([host]),
        consistency_level=ONE,
        request_timeout=timeout,
    )
    return Cluster(
        [host],
        port=CQL_PORT,
        protocol_version=5,
        auth_provider=PlainTextAuthProvider(*credentials) if credentials else None,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        schema_metadata_enabled=False,
        token_metadata_enabled=False,
    )


@contextmanager
def login(
    host: str, candidates: Sequence[Credentials | None] = (None,), timeout: float = 15.0
) -> Iterator[tuple[Session, Credentials | None]]:
    """A session on ``host`` with the first of ``candidates`` the node accepts (None: no login).

    Yields the session and the credentials that worked. Raises ``NoHostAvailable`` when the node
    is unreachable or refuses every candidate (``login_refused`` tells which), other
    ``CQL_ERRORS`` as the driver raises them.
    """
    with _quiet:
        for n, credentials in enumerate(candidates):
            cluster = _cluster(host, credentials, timeout)
            try:
                session = cluster.connect()
            except BaseException as exc:
                cluster.shutdown()
                if n + 1 < len(candidates) and login_refused(exc):
                    continue
                raise
            try:
                yield session, credentials
            finally:
                cluster.shutdown()
            return


def query(session: Session, cql: str, consistency: int = ONE) -> list[Any]:
    """Run one statement at ``consistency``; rows as named tuples (none for DDL, DCL, writes)."""
    return list(session.execute(SimpleStatement(cql, consistency_level=consistency)))

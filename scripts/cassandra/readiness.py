"""What "ready" means for a node and a cluster, and waiting for it.

A node's CQL port opens before the node can answer, and a node that answers may not yet see
its peers, so readiness is checked with queries, not with open ports.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cassandra.cluster import Session

from scripts.cassandra import cql
from scripts.cassandra.common import CassandraError

if TYPE_CHECKING:
    from scripts.cassandra.cluster import CassandraCluster


def release_version(session: Session) -> str | None:
    rows = cql.query(session, "SELECT release_version FROM system.local")
    return rows[0].release_version if rows else None


def sees_all_replicas(session: Session, size: int) -> bool:
    """The session's node knows every peer and gets answers from all of them at consistency ALL.

    system_distributed is replicated to three nodes by default (every node of a 1-3 node
    cluster), so an ALL read of it fails with Unavailable or a timeout until this node
    considers all the others up and they respond.
    """
    if len(cql.query(session, "SELECT peer FROM system.peers_v2")) < size - 1:
        return False
    cql.query(
        session,
        "SELECT status FROM system_distributed.view_build_status "
        "WHERE keyspace_name = 'readiness' AND view_name = 'probe'",
        cql.ALL,
    )
    return True


def wait_ready(cluster: CassandraCluster, timeout: float, nodes: Sequence[int] | None) -> None:
    """See ``CassandraCluster.wait_ready``."""
    began = time.monotonic()
    deadline = began + timeout
    pending = list(range(cluster.size) if nodes is None else nodes)
    errors: dict[int, str] = {}

    def check_alive(i: int) -> None:
        if not cluster.is_running(i):
            raise CassandraError(
                f"node{i} ({cluster.hosts[i]}) exited during start-up\n{cluster.log_tail(i)}"
            )

    def timed_out(what: str) -> CassandraError:
        tails = "\n".join(
            f"node{i}: last error: {errors.get(i, '-')}\n{cluster.log_tail(i)}" for i in pending
        )
        return CassandraError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")

    while pending:
        for i in list(pending):
            check_alive(i)
            try:
                version = cluster.release_version(i)
            except cql.CQL_ERRORS as exc:
                errors[i] = str(exc)
                continue
            pending.remove(i)
            cluster.say(
                f"node{i} ({cluster.hosts[i]}) answers CQL: Cassandra {version}, "
                f"{time.monotonic() - began:.1f}s"
            )
        if pending:
            if time.monotonic() > deadline:
                raise timed_out("CQL")
            time.sleep(0.5)

    # Peers can only be seen when they run: a node restarted alone needs to answer, no more.
    if cluster.size == 1 or not all(cluster.is_running(i) for i in range(cluster.size)):
        return
    pending = list(range(cluster.size))
    while pending:
        for i in list(pending):
            check_alive(i)
            try:
                with cluster.connect(i) as session:
                    seen = sees_all_replicas(session, cluster.size)
                if seen:
                    pending.remove(i)
                    continue
                errors[i] = "not all peers known yet"
            except cql.CQL_ERRORS as exc:
                errors[i] = str(exc)
        if pending:
            if time.monotonic() > deadline:
                raise timed_out("the nodes to see each other")
            time.sleep(0.5)
    cluster.say(f"all {cluster.size} nodes see each other, {time.monotonic() - began:.1f}s")

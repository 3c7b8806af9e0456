"""What a failed Cassandra query means for the caller, and what a person can do about it."""

from __future__ import annotations

from cassandra import OperationTimedOut, ReadTimeout, Unauthorized, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable

from services.recorder.store import DeadlineExceeded

# Cassandra could not reach the consistency level or answer in time: nothing was acknowledged,
# and the client may retry (with the same request_id).
# Unauthorized is here because Cassandra checks permissions by reading system_auth at
# LOCAL_QUORUM too: with too few nodes up, that read fails as "Unauthorized".
UNAVAILABLE = (
    Unavailable, WriteTimeout, ReadTimeout, OperationTimedOut, NoHostAvailable, DeadlineExceeded, Unauthorized,
)  # fmt: skip
_KIND = {
    Unavailable: "unavailable",
    WriteTimeout: "write_timeout",
    ReadTimeout: "read_timeout",
    OperationTimedOut: "client_timeout",
    DeadlineExceeded: "client_timeout",
    NoHostAvailable: "no_host",
}
ADVICE = {
    "unavailable": "too few replicas are up: check that the Cassandra nodes are running (nodetool status)",
    "write_timeout": "replicas did not answer in time: a node may be down or overloaded",
    "read_timeout": "replicas did not answer in time: a node may be down or overloaded",
    "client_timeout": "Cassandra did not answer within the deadline: a node may be down or overloaded",
    "no_host": "no Cassandra node can be reached: check the nodes and RECORDER_CASSANDRA_HOSTS",
    "auth_unavailable": "too few replicas of system_auth are up to check permissions: check the Cassandra nodes",
    "unauthorized": "the recorder's role lacks a permission: GRANT SELECT, MODIFY on the keyspace to it",
}


def kind(exc: Exception) -> str:
    """The failure's kind: a metric label and the key of its advice."""
    if isinstance(exc, Unauthorized):
        return "auth_unavailable" if "consistency level" in str(exc) else "unauthorized"
    return _KIND.get(type(exc), "other")

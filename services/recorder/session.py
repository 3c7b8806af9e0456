"""The recorder's Cassandra session: how it connects, routes and times out."""

from __future__ import annotations

import socket

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import dict_factory

from services.recorder.config import Config


def connect(config: Config) -> tuple[Cluster, Session]:
    """Open a session (blocking). Token-aware routing sends each write straight to a replica."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_datacenter)),
        request_timeout=config.request_timeout_seconds,
        row_factory=dict_factory,
    )
    auth = (
        PlainTextAuthProvider(config.cassandra_username, config.cassandra_password)
        if config.cassandra_username
        else None
    )
    cluster = Cluster(
        contact_points=list(config.cassandra_hosts),
        port=config.cassandra_port,
        auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
        connect_timeout=5,
        # Nodes that restart are back in use within seconds (the default waits up to 10 min).
        reconnection_policy=ExponentialReconnectionPolicy(0.5, config.reconnect_max_seconds),
        # Not wait_for_ready: a down cluster must turn into a prompt UNAVAILABLE.
        control_connection_timeout=5,
        # Without it, Nagle's algorithm holds a request back until the previous one is acknowledged,
        # and the node delays its ACK up to 40 ms: with a few records in flight at once, a write
        # took 25-50 ms instead of 2 (the driver leaves the option off by default).
        sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    try:
        return cluster, cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise

"""Session-wide fixtures: one real Cassandra node for the whole run.

The node listens on a loopback address picked at random for this session (never 127.0.0.1),
with its own JMX port and data directory, so it never meets the node of a `make run` stack or
of another test session on the same machine.
"""

from __future__ import annotations

import pytest

from scripts.cassandra import CassandraCluster
from tests.helpers import free_loopback_hosts, free_port_block

TEST_CASSANDRA_HOST = free_loopback_hosts(1)[0]
TEST_CASSANDRA_JMX_PORT = free_port_block(1)


@pytest.fixture(scope="session")
def cassandra(tmp_path_factory):
    cluster = CassandraCluster(
        base_dir=tmp_path_factory.mktemp("cassandra"),
        hosts=[TEST_CASSANDRA_HOST],
        jmx_port_base=TEST_CASSANDRA_JMX_PORT,
        fast_start=True,
    )
    with cluster.running():
        yield cluster


@pytest.fixture(scope="session")
def cql(cassandra):
    """An independent driver session, to check what the services wrote without trusting them."""
    from cassandra.cluster import Cluster

    cluster = Cluster([TEST_CASSANDRA_HOST], protocol_version=5)
    session = cluster.connect()
    yield session
    cluster.shutdown()

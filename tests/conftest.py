"""Session-wide fixtures: one real Cassandra node for the whole run, and one stack of the
services on it for the end-to-end and client tests (tests/e2e, tests/client).

The node listens on a loopback address picked at random for this session (never 127.0.0.1),
with its own JMX port and data directory, so it never meets the node of a `make run` stack or
of another test session on the same machine.
"""

from __future__ import annotations

import httpx
import pytest

from scripts.cassandra import CassandraCluster
from scripts.devstack import Stack, StackConfig
from tests.helpers import free_loopback_hosts, free_port_block

TEST_CASSANDRA_HOST = free_loopback_hosts(1)[0]
TEST_CASSANDRA_JMX_PORT = free_port_block(1)
E2E_KEYSPACE = "digits_e2e"


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


@pytest.fixture(scope="session")
def stack(cassandra, tmp_path_factory):
    """One stack of real processes (recognizer, recorder, gateway) on free ports, against the
    session's Cassandra node. Here, not in tests/e2e, so tests/client shares the same one."""
    config = StackConfig.on_free_ports(
        run_dir=tmp_path_factory.mktemp("stack"),
        cassandra_hosts=(TEST_CASSANDRA_HOST,),
        cassandra_jmx_port_base=TEST_CASSANDRA_JMX_PORT,
        keyspace=E2E_KEYSPACE,
        manage_cassandra=False,
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        processes = list(stack.processes.values())
        stack.stop()
        assert all(not p.alive() for p in processes), "a service outlived the stack"


@pytest.fixture()
def http(stack):
    """An HTTP client for the stack's gateway, with the admin token (``make run``'s way of
    reading everything back)."""
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    with httpx.Client(base_url=stack.config.gateway_url, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture()
def anonymous(stack):
    """An HTTP client for the stack's gateway, without a token."""
    with httpx.Client(base_url=stack.config.gateway_url, timeout=30) as client:
        yield client

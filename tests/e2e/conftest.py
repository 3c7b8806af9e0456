"""One stack of real processes (recognizer, recorder, gateway) for all end-to-end tests, on
free ports, against the session's Cassandra node."""

from __future__ import annotations

import httpx
import pytest

from scripts.devstack import Stack, StackConfig
from tests.conftest import TEST_CASSANDRA_HOST, TEST_CASSANDRA_JMX_PORT

KEYSPACE = "digits_e2e"


@pytest.fixture(scope="session")
def stack(cassandra, tmp_path_factory):
    config = StackConfig.on_free_ports(
        run_dir=tmp_path_factory.mktemp("stack"),
        cassandra_hosts=(TEST_CASSANDRA_HOST,),
        cassandra_jmx_port_base=TEST_CASSANDRA_JMX_PORT,
        keyspace=KEYSPACE,
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

"""The fault suite's world: a real 3-node Cassandra cluster on loopback and the whole stack
(recognizer, recorder, gateway as processes) in front of it, for every case in turn.

``make test`` runs each case with a short load (``DIGITS_FAULT_SECONDS``, 6 s of faults);
``make test-faults`` runs the same cases longer. Each case prints one row of the table at the
end: uploads sent, acknowledged, failed attempts by kind, and acknowledged records found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx
import pytest

from scripts.cassandra import CassandraCluster
from scripts.devstack import Stack, StackConfig
from tests.helpers import free_loopback_hosts, free_port_block

HOSTS = free_loopback_hosts(3)
JMX_PORT_BASE = free_port_block(3)
SECONDS = float(os.environ.get("DIGITS_FAULT_SECONDS", "6"))


@dataclass
class Row:
    case: str
    uploads: int
    acknowledged: int
    failed_uploads: int
    failed_attempts: str
    found: int
    duplicates: int


ROWS: list[Row] = []


@pytest.fixture(scope="package")
def ring(tmp_path_factory):
    nodes = CassandraCluster(
        base_dir=tmp_path_factory.mktemp("faults-cassandra"), hosts=HOSTS, jmx_port_base=JMX_PORT_BASE, fast_start=True
    )
    with nodes.running(timeout=300):
        yield nodes


@pytest.fixture(scope="package")
def stack(ring, tmp_path_factory):
    config = StackConfig.on_free_ports(
        run_dir=tmp_path_factory.mktemp("faults-stack"),
        cassandra_hosts=tuple(HOSTS),
        cassandra_jmx_port_base=JMX_PORT_BASE,
        keyspace="digits_faults",
        manage_cassandra=False,
        # Nodes that come back are used again within two seconds.
        env={"RECORDER_RECONNECT_MAX_SECONDS": "2"},
    )
    running = Stack(config)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture()
def user_token(stack) -> tuple[str, str]:
    """A fresh user and its token: each case uploads into a history of its own."""
    import uuid

    user = f"faults-{uuid.uuid4().hex[:8]}"
    reply = httpx.post(
        f"{stack.config.gateway_url}/v1/tokens", json={"user": user},
        headers={"Authorization": f"Bearer {stack.admin_token}"}, timeout=30,
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    return user, reply.json()["token"]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"fault suite ({SECONDS:.0f} s of faults per case; DIGITS_FAULT_SECONDS sets it)")
    header = f"{'case':<52} {'uploads':>7} {'acked':>6} {'failed':>6} {'found':>6} {'dupes':>5}  failed attempts by kind"
    write(header)
    write("-" * len(header))
    for r in ROWS:
        write(f"{r.case:<52} {r.uploads:>7} {r.acknowledged:>6} {r.failed_uploads:>6} {r.found:>6} {r.duplicates:>5}  {r.failed_attempts or '-'}")

"""A real 3-node Cassandra cluster with passwords on, and a recorder in front of it.

The nodes listen on three consecutive loopback addresses picked at random for this run, with
their own JMX ports and directory, apart from the session's single node, from a `make run`
stack and from any other test run on the machine. The cluster starts once, for the whole
package, and stops when the package is done (package scope rather than session scope, so the
three JVMs do not keep competing for the CPU with the rest of the suite).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import grpc
import pytest

from digits.config import from_env
from digits.v1 import recorder_pb2_grpc
from scripts.cassandra import AuthConfig, CassandraCluster
from services.recorder.config import Config
from services.recorder.server import build
from tests.helpers import ROOT, TEST_ADMIN_TOKEN, ServiceThread, free_loopback_hosts, free_port_block, with_token

HOSTS = free_loopback_hosts(3)
JMX_PORT_BASE = free_port_block(3)
APP_USER = "digits_recorder"
KEYSPACE = "digits_cluster"


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    nodes = CassandraCluster(
        base_dir=tmp_path_factory.mktemp("cassandra3"),
        hosts=HOSTS,
        jmx_port_base=JMX_PORT_BASE,
        auth=AuthConfig(APP_USER, secrets.token_urlsafe(18)),
        fast_start=True,
    )
    with nodes.running(timeout=300):
        yield nodes


@pytest.fixture(scope="package")
def recorder_env(cluster) -> dict[str, str]:
    """The recorder's settings as a Kubernetes Deployment would give them: environment only."""
    assert cluster.auth is not None and cluster.auth.app_password
    return {
        "RECORDER_CASSANDRA_HOSTS": ",".join(HOSTS),
        "RECORDER_CASSANDRA_USERNAME": APP_USER,
        "RECORDER_CASSANDRA_PASSWORD": cluster.auth.app_password,
        "RECORDER_KEYSPACE": KEYSPACE,
        "RECORDER_REPLICATION_FACTOR": "3",
        "RECORDER_WRITE_CONSISTENCY": "LOCAL_QUORUM",
        "RECORDER_READ_CONSISTENCY": "LOCAL_QUORUM",
        "RECORDER_CREATE_SCHEMA": "false",
        "RECORDER_HOST": "127.0.0.1",
        "RECORDER_PORT": "0",
        "RECORDER_METRICS_PORT": "0",
        "RECORDER_RECONNECT_MAX_SECONDS": "2",
        "RECORDER_ADMIN_TOKEN": TEST_ADMIN_TOKEN,
    }


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m services.recorder.migrate`, as the Kubernetes Job runs it."""
    return subprocess.run(
        [sys.executable, "-m", "services.recorder.migrate"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.fixture(scope="package")
def schema_ready(recorder_env) -> None:
    result = migrate(recorder_env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="package")
def recorder(schema_ready, recorder_env):
    service = ServiceThread(build(from_env(Config, "RECORDER_", recorder_env))).start()
    service.wait_ready()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture()
def stub(recorder):
    with grpc.insecure_channel(recorder.address) as channel:
        yield recorder_pb2_grpc.RecorderStub(with_token(channel))


@pytest.fixture(scope="package")
def cql(cluster):
    """An independent driver session (the app role, QUORUM reads) to check what was stored."""
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
        consistency_level=ConsistencyLevel.QUORUM,
        request_timeout=20,
    )
    driver = Cluster(
        HOSTS,
        protocol_version=5,
        auth_provider=PlainTextAuthProvider(APP_USER, cluster.auth.app_password),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        reconnection_policy=ExponentialReconnectionPolicy(0.5, 2),
    )
    session = driver.connect()
    yield session
    driver.shutdown()

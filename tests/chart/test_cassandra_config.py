"""The chart's cassandra.yaml, booted by a real Cassandra 5.0.8 (from Maven Central, as the rest
of the suite runs it): what kwok cannot show, since its pods run nothing.

Only what depends on where the node runs is this test node's own: addresses, seeds, ports,
directories, and the snitch (GossipingPropertyFileSnitch reads cassandra-rackdc.properties from
Cassandra's conf folder on the classpath, which the official image has and a node run from
Maven's jars does not). Every other setting is the chart's, and the node must start with it,
accept logins only with a password, and report the chart's durability settings.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

from scripts.cassandra import AuthConfig, CassandraCluster
from tests.chart.conftest import one, render
from tests.helpers import free_loopback_hosts, free_port_block

HOST = free_loopback_hosts(1)[0]
LOCAL_KEYS = (
    "listen_address", "rpc_address", "seed_provider", "storage_port", "native_transport_port",
    "data_file_directories", "commitlog_directory", "saved_caches_directory", "hints_directory",
    "cdc_raw_directory", "auto_bootstrap", "endpoint_snitch",
)  # fmt: skip


def _chart_settings() -> dict[str, Any]:
    return yaml.safe_load(one(render(), "ConfigMap", "digits-cassandra")["data"]["cassandra.yaml"])


def _with_chart_settings(_: int, ours: str) -> str:
    node = yaml.safe_load(ours)
    merged = {**_chart_settings(), **{key: node[key] for key in LOCAL_KEYS if key in node}}
    return yaml.safe_dump(merged, sort_keys=False)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    cassandra = CassandraCluster(
        base_dir=tmp_path_factory.mktemp("chart-cassandra"), hosts=[HOST], jmx_port_base=free_port_block(1),
        auth=AuthConfig("unused", None), fast_start=True, settings=_with_chart_settings,
    )  # fmt: skip
    cassandra.start(wait=False)  # the roles are the migration Job's business, not our scripts'
    try:
        cassandra.wait_ready(timeout=180)
        yield cassandra
    finally:
        cassandra.stop()


def test_cassandra_starts_with_the_charts_settings_and_reports_them(node: CassandraCluster) -> None:
    chart = _chart_settings()
    cluster = Cluster([HOST], protocol_version=5, auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
    session = cluster.connect()
    try:
        settings = {
            row.name: row.value
            for row in session.execute("SELECT name, value FROM system_views.settings")
        }
        assert settings["commitlog_sync"] == chart["commitlog_sync"] == "group"
        assert settings["commitlog_sync_group_window"] == chart["commitlog_sync_group_window"]
        assert "PasswordAuthenticator" in settings["authenticator"]
        assert "CassandraAuthorizer" in settings["authorizer"]
        assert settings["cluster_name"] == chart["cluster_name"]
        local = session.execute("SELECT tokens FROM system.local").one()
        assert len(local.tokens) == chart["num_tokens"]
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS probe WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS probe.t (k int PRIMARY KEY, v text)")
        session.execute("INSERT INTO probe.t (k, v) VALUES (1, 'durable')")
        assert session.execute("SELECT v FROM probe.t WHERE k = 1").one().v == "durable"
    finally:
        cluster.shutdown()


def test_the_node_refuses_a_login_without_the_password(node: CassandraCluster) -> None:
    from cassandra.cluster import NoHostAvailable

    with pytest.raises(NoHostAvailable):
        Cluster([HOST], protocol_version=5).connect()

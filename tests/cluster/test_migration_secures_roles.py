"""The schema Job's first run on a brand-new cluster with passwords on, as the chart's Cassandra
starts: only the well-known cassandra/cassandra superuser exists. A real Cassandra node of its
own (the cluster package's 3-node ring is not fresh: its scripts already rotated that password)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from cassandra import Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable

from digits.cql import login_refused
from scripts.cassandra import AuthConfig, CassandraCluster
from tests.helpers import ROOT, free_loopback_hosts, free_port_block

HOST = free_loopback_hosts(1)[0]
ADMIN, ADMIN_PASSWORD = "digits_admin", secrets.token_urlsafe(24)
RECORDER, RECORDER_PASSWORD = "digits_recorder", secrets.token_urlsafe(24)
KEYSPACE = "digits_fresh"


@pytest.fixture(scope="module")
def fresh_node(tmp_path_factory):
    # Passwords on, but no role set up by our scripts: start without their _setup_auth.
    node = CassandraCluster(
        base_dir=tmp_path_factory.mktemp("fresh"), hosts=[HOST], jmx_port_base=free_port_block(1),
        auth=AuthConfig("unused", None), fast_start=True,
    )  # fmt: skip
    node.start(wait=False)
    try:
        node.wait_ready(timeout=180)
        yield node
    finally:
        node.stop()


def _job_env() -> dict[str, str]:
    """What the chart's hook Job sets (templates/recorder-migration.yaml)."""
    return {
        "RECORDER_CASSANDRA_HOSTS": HOST,
        "RECORDER_KEYSPACE": KEYSPACE,
        "RECORDER_REPLICATION_FACTOR": "1",
        "RECORDER_CASSANDRA_USERNAME": RECORDER,
        "RECORDER_CASSANDRA_PASSWORD": RECORDER_PASSWORD,
        "RECORDER_CASSANDRA_ADMIN_USERNAME": ADMIN,
        "RECORDER_CASSANDRA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RECORDER_AUTH_REPLICATION_FACTOR": "1",
        "RECORDER_MIGRATE_WAIT_SECONDS": "120",
    }


def _run_job() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.recorder.migrate"],
        cwd=ROOT, env={**os.environ, **_job_env()}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def _session(user: str, password: str):  # type: ignore[no-untyped-def]
    cluster = Cluster([HOST], protocol_version=5, auth_provider=PlainTextAuthProvider(user, password))
    return cluster, cluster.connect()


def _login_refused(user: str, password: str) -> bool:
    try:
        cluster, _ = _session(user, password)
    except NoHostAvailable as exc:
        if login_refused(exc):
            return True
        raise
    cluster.shutdown()
    return False


def test_first_run_replaces_the_default_superuser_and_grants_the_recorder_its_keyspace_only(fresh_node) -> None:
    assert not _login_refused("cassandra", "cassandra")  # the starting point: a well-known login
    first = _run_job()
    assert first.returncode == 0, first.stdout + first.stderr

    assert _login_refused("cassandra", "cassandra")
    assert not _login_refused(ADMIN, ADMIN_PASSWORD)

    cluster, session = _session(RECORDER, RECORDER_PASSWORD)
    try:
        session.execute(f"INSERT INTO {KEYSPACE}.user_days (user, day) VALUES ('ada', '2026-11-01')")
        assert session.execute(f"SELECT day FROM {KEYSPACE}.user_days WHERE user = 'ada'").one()
        for forbidden in (
            f"DROP TABLE {KEYSPACE}.images",
            "CREATE KEYSPACE elsewhere WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            "SELECT * FROM system_auth.roles",
            f"ALTER ROLE {ADMIN} WITH PASSWORD = 'x'",
        ):
            with pytest.raises(Unauthorized):
                session.execute(forbidden)
    finally:
        cluster.shutdown()


def test_every_later_run_changes_nothing_and_succeeds(fresh_node) -> None:
    again = _run_job()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating the admin role" not in again.stdout + again.stderr
    assert "creating the recorder role" not in again.stdout + again.stderr
    assert not _login_refused(RECORDER, RECORDER_PASSWORD)

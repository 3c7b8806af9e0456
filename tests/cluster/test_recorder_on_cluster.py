"""The recorder on a real 3-node cluster (RF 3, LOCAL_QUORUM, passwords on): node loss,
majority loss, authentication, paging and idempotency. Everything acknowledged is read back
with the driver directly, at QUORUM, not through the recorder.

The tests run in file order and share the cluster; each one leaves all three nodes up.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.concurrent import execute_concurrent_with_args

from digits.v1 import recorder_pb2
from tests.cluster.conftest import APP_USER, HOSTS, KEYSPACE, migrate
from tests.recording import SEVEN, record_request

pytestmark = pytest.mark.cassandra


def assert_all_stored(cql, acknowledged: dict[str, str]) -> None:
    """Every acknowledged id (-> user) has its row, its image and its listing rows, at QUORUM."""
    ids = [uuid.UUID(i) for i in acknowledged]
    found = execute_concurrent_with_args(
        cql, cql.prepare(f"SELECT id, user, image_size FROM {KEYSPACE}.recognitions WHERE id = ?"),
        [(i,) for i in ids], concurrency=32, raise_on_first_error=True,
    )  # fmt: skip
    rows = {r.id: r for ok, result in found for r in result}
    missing = [str(i) for i in ids if i not in rows]
    assert not missing, f"{len(missing)} acknowledged records are missing, e.g. {missing[:3]}"
    assert all(rows[i].user == acknowledged[str(i)] for i in ids)
    images = execute_concurrent_with_args(
        cql, cql.prepare(f"SELECT data FROM {KEYSPACE}.images WHERE id = ?"), [(i,) for i in ids], concurrency=32
    )
    assert all(b"".join(r.data for r in result) == SEVEN for ok, result in images)


def test_the_migration_is_idempotent_and_replicates_to_every_node(recorder_env, cql):
    # The package fixture ran it once already; a second run (a re-deployed Job) changes nothing.
    result = migrate(recorder_env)
    assert result.returncode == 0, result.stderr
    replication = cql.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [KEYSPACE]
    ).one().replication
    assert replication == {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "datacenter1": "3"}


@pytest.mark.parametrize(
    "credentials", [None, (APP_USER, "wrong-password"), ("cassandra", "cassandra")],
    ids=["anonymous", "wrong-password", "default-superuser"],
)  # fmt: skip
def test_connections_without_valid_credentials_are_refused(cluster, credentials):
    auth = PlainTextAuthProvider(*credentials) if credentials else None
    driver = Cluster(HOSTS[:1], protocol_version=5, auth_provider=auth, connect_timeout=10)
    try:
        with pytest.raises(NoHostAvailable) as caught:
            driver.connect()
        errors = list(caught.value.errors.values())
        assert errors and all(isinstance(e, AuthenticationFailed) or "auth" in str(e).lower() for e in errors), errors
    finally:
        driver.shutdown()


def test_paging_returns_every_record_once_newest_first(stub, cql):
    user = f"pager-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    moments = [now - timedelta(days=d, seconds=s) for d in (0, 40) for s in range(6)]
    with ThreadPoolExecutor(6) as pool:
        stored = list(pool.map(lambda m: stub.Record(record_request(m, user=user), timeout=10), moments))
    listed, token, pages = [], "", 0
    while True:
        reply = stub.ListRecognitions(
            recorder_pb2.ListRecognitionsRequest(user=user, page_size=5, page_token=token), timeout=10
        )
        listed += reply.recognitions
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert [r.id for r in listed] == [s.id for s in sorted(stored, key=lambda r: r.received_at.ToDatetime(), reverse=True)]
    # The independent client sees the same history in the day partitions (two, or three if the
    # seconds crossed a midnight).
    days = cql.execute(f"SELECT day FROM {KEYSPACE}.user_days WHERE user = %s", [user]).all()
    assert {str(d.day) for d in days} == {m.date().isoformat() for m in moments}
    rows = [r for d in days for r in cql.execute(
        f"SELECT id FROM {KEYSPACE}.recognitions_by_user_day WHERE user = %s AND day = %s", [user, d.day])]  # fmt: skip
    assert [str(r.id) for r in rows] == [r.id for r in listed]


def test_a_retry_returns_the_same_id_and_stores_one_record(stub, cql):
    user = f"retry-{uuid.uuid4().hex[:8]}"
    request = record_request(user=user)
    ids = {stub.Record(request, timeout=10).id for _ in range(3)}
    assert len(ids) == 1
    day = request.recognition.received_at.ToDatetime().date()
    rows = cql.execute(f"SELECT id FROM {KEYSPACE}.recognitions_by_user_day WHERE user = %s AND day = %s", [user, day])
    assert [str(r.id) for r in rows] == list(ids)


class Writers:
    """Threads that Record continuously, keeping what was acknowledged and what failed."""

    def __init__(self, stub, threads: int, timeout: float) -> None:
        self.acknowledged: dict[str, str] = {}
        self.failures: list[str] = []
        self._stub, self._timeout = stub, timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        user = f"writer-{n}-{uuid.uuid4().hex[:6]}"
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                reply = self._stub.Record(record_request(user=user), timeout=self._timeout)
                with self._lock:
                    self.acknowledged[reply.id] = user
            except grpc.RpcError as exc:
                with self._lock:
                    self.failures.append(
                        f"at {started:.1f} after {time.monotonic() - started:.1f} s: {exc.code().name}: {exc.details()}"
                    )

    def __enter__(self) -> "Writers":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)


def test_killing_a_node_while_writing_fails_no_request_and_loses_no_record(cluster, stub, cql):
    victim = 1
    with Writers(stub, threads=8, timeout=20) as writers:
        time.sleep(3)
        before_kill = writers.count()
        cluster.stop_node(victim, kill=True)  # kill -9: no drain, no goodbye to the others
        # Long enough for the survivors' failure detector to convict the dead node.
        time.sleep(15)
    after_kill = writers.count() - before_kill
    assert writers.failures == [], f"{len(writers.failures)} requests failed: {writers.failures[:3]}"
    assert before_kill > 0 and after_kill > 0, (before_kill, after_kill)
    assert_all_stored(cql, writers.acknowledged)  # with one node down: QUORUM of the other two
    cluster.start_node(victim)
    assert_all_stored(cql, writers.acknowledged)


def test_with_two_nodes_down_record_is_promptly_unavailable_and_then_resumes(cluster, stub, cql):
    acknowledged = {}
    for _ in range(10):
        reply = stub.Record(record_request(user="majority-loss"), timeout=10)
        acknowledged[reply.id] = "majority-loss"
    # A clean stop: a node killed within its commit log sync period (periodic, 10 s) loses
    # what it acknowledged in that period, and with two of three replicas gone at once a
    # QUORUM read could then miss it. One crashed node is the previous test.
    cluster.stop_node(1)
    cluster.stop_node(2)
    try:
        for deadline in (3.0, 8.0):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                stub.Record(record_request(user="majority-loss"), timeout=deadline)
            elapsed = time.monotonic() - started
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
            assert elapsed < deadline + 2, f"answered after {elapsed:.1f} s with a {deadline} s deadline"
            assert "LOCAL_QUORUM" in caught.value.details() and "retry" in caught.value.details()
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetRecognition(recorder_pb2.GetRecognitionRequest(id=next(iter(acknowledged))), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        cluster.start_node(1, wait=False)
        cluster.start_node(2, wait=False)
        cluster.wait_ready(timeout=180, nodes=[1, 2])
    deadline = time.monotonic() + 60
    while True:
        try:
            reply = stub.Record(record_request(user="majority-loss"), timeout=10)
            acknowledged[reply.id] = "majority-loss"
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            assert time.monotonic() < deadline, "the recorder did not resume after the nodes returned"
            time.sleep(0.5)
    assert_all_stored(cql, acknowledged)

"""The cores the dev stack's Cassandra runs on: which ones (``cassandra_cpus``), the move
itself (``processes.confine``) and when the stack makes it. A small Python child with threads
stands in for the JVM (a fake: no Cassandra), its threads' affinity read back from /proc and
from the child; the stack's tests use a fake cluster that only records its calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.cassandra import CassandraCluster
from scripts.cassandra.processes import confine
from scripts.devstack import Stack, StackConfig, cassandra_cpus

ALLOWED = sorted(os.sched_getaffinity(0))
needs_two_cores = pytest.mark.skipif(len(ALLOWED) < 2, reason="confining needs a second core to mean anything")

# Starts two threads that sleep, says so, then on each line of input starts one more thread
# and prints the cores that new thread may use.
_CHILD = """
import os, sys, threading, time
for _ in range(2):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
for _ in sys.stdin:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    print(",".join(map(str, seen[0])), flush=True)
"""


def _cores_of_every_thread(pid: int) -> set[str]:
    """Each thread's Cpus_allowed_list, as /proc shows it (one entry if they all agree)."""
    cores = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        cores.add(next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list:")))
    return cores


@pytest.fixture()
def child():
    """The threaded child, once its two sleepers run; killed after the test."""
    process = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


@needs_two_cores
def test_every_thread_is_confined_and_threads_started_later_inherit_it(child):
    last = ALLOWED[-1]
    moved = confine(child.pid, {last})
    assert moved >= 3  # the main thread and its two sleepers
    assert _cores_of_every_thread(child.pid) == {str(last)}
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == str(last)


@needs_two_cores
def test_the_cluster_confines_each_live_node(tmp_path, child):
    cluster = CassandraCluster(tmp_path, say=lambda line: None)
    cluster._children[0] = child  # as _launch leaves it
    cluster.confine({ALLOWED[-1]})
    assert _cores_of_every_thread(child.pid) == {str(ALLOWED[-1])}


def test_confining_a_process_that_has_exited_moves_nothing():
    child = subprocess.Popen(["true"])
    child.wait()
    assert confine(child.pid, {ALLOWED[0]}) == 0


@needs_two_cores
def test_by_default_cassandra_gets_the_last_quarter_of_the_cores_and_at_least_one():
    share = max(1, len(ALLOWED) // 4)
    assert cassandra_cpus("auto") == frozenset(ALLOWED[-share:])
    assert cassandra_cpus("") == cassandra_cpus("auto")


def test_the_setting_names_cores_as_a_list_with_ranges_or_turns_it_off():
    assert cassandra_cpus("none") is None
    assert cassandra_cpus(f" {ALLOWED[0]} ") == frozenset({ALLOWED[0]})
    if len(ALLOWED) >= 2 and ALLOWED[1] == ALLOWED[0] + 1:
        assert cassandra_cpus(f"{ALLOWED[0]}-{ALLOWED[1]}") == frozenset(ALLOWED[:2])


def test_the_environment_variable_is_read_when_no_setting_is_given(monkeypatch):
    monkeypatch.setenv("DIGITS_CASSANDRA_CPUS", "none")
    assert cassandra_cpus() is None
    monkeypatch.setenv("DIGITS_CASSANDRA_CPUS", str(ALLOWED[0]))
    assert cassandra_cpus() == frozenset({ALLOWED[0]})


@pytest.mark.parametrize("setting", ["one", "1-", "-1", "1,,2", "1-0", str(max(ALLOWED) + 1)])
def test_a_setting_that_is_not_cores_of_this_machine_is_refused_with_what_is_expected(setting):
    with pytest.raises(ValueError, match="DIGITS_CASSANDRA_CPUS"):
        cassandra_cpus(setting)


class _FakeCassandra:
    """Stands in for CassandraCluster in the stack (a small fake: no node is started)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def start(self, wait: bool) -> None:
        self.calls.append(("start", wait))

    def confine(self, cpus) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("confine", cpus))


def _calls_when_started(config: StackConfig, monkeypatch) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    """What the stack asked of its Cassandra in ``start()``, its services left out."""
    stack = Stack(config)
    fake = stack.cassandra = _FakeCassandra()  # type: ignore[assignment]
    monkeypatch.setattr(stack, "start_service", lambda name: None)
    monkeypatch.setattr(stack, "wait_service", lambda name: None)
    stack.start()
    return fake.calls


@pytest.mark.parametrize("cpus", [frozenset({ALLOWED[-1]}), None])
def test_the_stack_confines_the_cassandra_it_starts_once_it_is_up(tmp_path, monkeypatch, cpus):
    calls = _calls_when_started(StackConfig(run_dir=tmp_path, cassandra_cpus=cpus), monkeypatch)
    assert calls == [("start", True), *([("confine", cpus)] if cpus else [])]


def test_a_stack_on_a_cassandra_it_does_not_manage_leaves_it_alone(tmp_path, monkeypatch):
    config = StackConfig(run_dir=tmp_path, manage_cassandra=False, cassandra_cpus=frozenset({ALLOWED[-1]}))
    assert _calls_when_started(config, monkeypatch) == []

"""How the dev scripts tell whether a node's JVM runs. A `sleep` child stands in for the JVM
(a small fake, no Cassandra): it is exactly what /proc shows in the moment after Popen returns
and before the child's exec has finished, a process whose command line is not the node's."""

from __future__ import annotations

import subprocess

from scripts.cassandra import CassandraCluster
from scripts.cassandra.processes import find_pid


def _child() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)


def test_a_node_launched_by_us_counts_as_running_before_proc_shows_its_command_line(tmp_path):
    cluster = CassandraCluster(tmp_path)
    child = _child()
    try:
        cluster._children[0] = child  # as _launch leaves it
        assert find_pid(cluster._pid_file(0), "no-such-config") is None  # /proc: not a node (yet)
        assert cluster.pid(0) == child.pid
        assert cluster.is_running(0)
    finally:
        child.kill()
        child.wait()


def test_a_launched_node_that_exited_is_not_running(tmp_path):
    cluster = CassandraCluster(tmp_path)
    child = subprocess.Popen(["true"])
    child.wait()
    cluster._children[0] = child
    assert cluster.pid(0) is None
    assert not cluster.is_running(0)


def test_a_pid_file_naming_some_other_process_is_not_taken_for_the_node(tmp_path):
    # A recycled pid: the file names a live process, but not this node's JVM.
    child = _child()
    try:
        pid_file = tmp_path / "cassandra.pid"
        pid_file.write_text(f"{child.pid}\n")
        assert find_pid(pid_file, (tmp_path / "cassandra.yaml").as_uri()) is None
    finally:
        child.kill()
        child.wait()

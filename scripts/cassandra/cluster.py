"""CassandraCluster: a cluster's nodes as processes, from start to stop, and their readiness."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from scripts.cassandra import auth as roles
from scripts.cassandra import config, cql, processes, readiness
from scripts.cassandra.common import (
    CASSANDRA_VERSION,
    CQL_PORT,
    DATACENTER,
    STORAGE_PORT,
    CassandraError,
    say,
)
from scripts.cassandra.config import AuthConfig
from scripts.cassandra.install import DEFAULT_CACHE_DIR, DEFAULT_JAVA, ensure_java, install

CLUSTER_FILE = "cluster.json"


def read_cluster_file(base_dir: Path) -> dict[str, Any] | None:
    try:
        saved: dict[str, Any] = json.loads((base_dir / CLUSTER_FILE).read_text())
        return saved
    except FileNotFoundError:
        return None


class CassandraCluster:
    """A Cassandra cluster of ``len(hosts)`` nodes on loopback addresses, one JVM each.

    Every resource a caller could collide on is a parameter: the addresses (each node binds
    7000 and 9042 on its own address), the JMX ports (``jmx_port_base + i``, bound on
    127.0.0.1) and the directory. ``make run`` and the test suite therefore run side by side.

    ``heap`` sets -Xms and -Xmx; expect ~0.9 GB resident per node at 512m, because Cassandra
    mlockall()s its memory when it may (it may as root). ``fast_start`` trades peak speed for a
    much faster start (see ``config.jvm_command``). ``auth`` turns on passwords (see
    ``auth.setup_auth``). ``say`` receives progress messages (default: stderr).
    ``settings(i, yaml)`` may rewrite node i's cassandra.yaml (the chart's tests boot the
    chart's settings with it).
    """

    port = CQL_PORT

    def __init__(
        self,
        base_dir: Path | str,
        hosts: Sequence[str] = ("127.0.0.1",),
        *,
        jmx_port_base: int = 7199,
        heap: str = "512m",
        auth: AuthConfig | None = None,
        fast_start: bool = False,
        cluster_name: str = "digits",
        java: Path = DEFAULT_JAVA,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        say: Callable[[str], None] = say,
        settings: Callable[[int, str], str] | None = None,
    ) -> None:
        if not hosts:
            raise ValueError("at least one host is needed")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"hosts must be distinct: {hosts}")
        if auth is not None and auth.app_user == roles.DEFAULT_SUPERUSER[0]:
            raise ValueError("the app role must not be the default superuser")
        self.base_dir = Path(base_dir).resolve()
        self.hosts = list(hosts)
        self.jmx_port_base = jmx_port_base
        self.heap = heap
        self.auth = auth
        self.fast_start = fast_start
        self.cluster_name = cluster_name
        self.java = java
        self.cache_dir = cache_dir
        self.say = say
        self.settings = settings
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def from_dir(cls, base_dir: Path | str, **overrides: Any) -> CassandraCluster:
        """Rebuild the cluster object that last ran in ``base_dir`` (for stop/status/restart)."""
        saved = read_cluster_file(Path(base_dir))
        if saved is None:
            raise CassandraError(f"{base_dir} holds no cluster (no {CLUSTER_FILE})")
        auth = AuthConfig(saved["app_user"], None) if saved.get("auth") else None
        kwargs: dict[str, Any] = {
            "hosts": saved["hosts"],
            "jmx_port_base": saved["jmx_port_base"],
            "heap": saved["heap"],
            "fast_start": saved.get("fast_start", False),
            "cluster_name": saved["cluster_name"],
            "auth": auth,
        }
        kwargs.update(overrides)
        return cls(base_dir, **kwargs)

    # ---- layout

    @property
    def contact_points(self) -> list[str]:
        """Addresses for a CQL client (all on port ``self.port``)."""
        return list(self.hosts)

    @property
    def size(self) -> int:
        return len(self.hosts)

    def node_dir(self, i: int) -> Path:
        return self.base_dir / f"node{i}"

    def log_file(self, i: int) -> Path:
        return self.node_dir(i) / "logs" / "system.log"

    def _pid_file(self, i: int) -> Path:
        return self.node_dir(i) / "cassandra.pid"

    def _stdout_file(self, i: int) -> Path:
        return self.node_dir(i) / "logs" / "stdout.log"

    def _check_dir_matches(self) -> None:
        """Refuse to reuse a directory with other addresses: its data names the old peers."""
        saved = read_cluster_file(self.base_dir)
        if saved is not None and saved["hosts"] != self.hosts:
            raise CassandraError(
                f"{self.base_dir} was created for hosts {saved['hosts']}, not {self.hosts}; "
                "use the same hosts or delete the directory"
            )

    def _save_description(self) -> None:
        """cluster.json: lets `stop`/`status` (and ``from_dir``) work from the directory alone."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        description = {
            "version": CASSANDRA_VERSION,
            "hosts": self.hosts,
            "jmx_port_base": self.jmx_port_base,
            "heap": self.heap,
            "fast_start": self.fast_start,
            "cluster_name": self.cluster_name,
            "auth": self.auth is not None,
            "app_user": self.auth.app_user if self.auth else None,
        }
        (self.base_dir / CLUSTER_FILE).write_text(json.dumps(description, indent=2) + "\n")

    # ---- processes

    def pid(self, i: int) -> int | None:
        """The live JVM of node ``i``, or None (see ``processes.find_pid``)."""
        child = self._children.get(i)
        if child is not None and child.poll() is None:
            # Launched by us and not reaped, so the pid is still its own. /proc alone is not
            # enough here: for a moment after Popen returns, the child's exec is not finished
            # and its cmdline reads empty (often, on a busy machine), which made a node that
            # had just started look as if it had exited.
            return child.pid
        return processes.find_pid(self._pid_file(i), config.config_file(self.node_dir(i)).as_uri())

    def is_running(self, i: int) -> bool:
        return self.pid(i) is not None

    def _launch(self, i: int, lib: Path) -> None:
        node = self.node_dir(i)
        text = config.cassandra_yaml(self.cluster_name, self.hosts, i, node, auth=self.auth is not None)
        config.write_node_files(node, self.settings(i, text) if self.settings else text)
        command = config.jvm_command(
            java=self.java,
            lib=lib,
            node_dir=node,
            heap=self.heap,
            jmx_port=self.jmx_port_base + i,
            cluster_size=self.size,
            fast_start=self.fast_start,
        )
        proc = processes.launch(command, cwd=node, stdout_file=self._stdout_file(i))
        self._children[i] = proc
        self._pid_file(i).write_text(f"{proc.pid}\n")

    def _check_ports_free(self, i: int) -> None:
        host = self.hosts[i]
        for addr, port in ((host, CQL_PORT), (host, STORAGE_PORT), ("127.0.0.1", self.jmx_port_base + i)):
            try:
                with socket.create_connection((addr, port), timeout=0.5):
                    pass
            except OSError:
                continue
            raise CassandraError(
                f"node{i}: {addr}:{port} is already in use by another process "
                "(another cluster on the same address or JMX port?)"
            )

    def start(self, wait: bool = True, timeout: float = 180.0) -> None:
        """Install if needed, start every node that is not running, and wait until usable.

        "Usable" means: every node answers a CQL query, every node can reach all replicas of
        a keyspace replicated to all nodes at consistency ALL (so a QUORUM write right after
        this returns succeeds), and, with ``auth``, the roles are set up. On failure the nodes
        started by this call are stopped again and ``CassandraError`` carries their log tails.
        """
        began = time.monotonic()
        lib = install(self.cache_dir, self.say)
        ensure_java(self.java)
        self._check_dir_matches()
        to_start = [i for i in range(self.size) if not self.is_running(i)]
        if not to_start:
            self.say(f"all {self.size} node(s) in {self.base_dir} are already running")
        for i in to_start:
            self._check_ports_free(i)
        self._save_description()
        for i in to_start:
            self._launch(i, lib)
            self.say(
                f"node{i} starting on {self.hosts[i]} (pid {self.pid(i)}, "
                f"JMX 127.0.0.1:{self.jmx_port_base + i}, log {self.log_file(i)})"
            )
        if not wait:
            return
        try:
            self.wait_ready(timeout=timeout - (time.monotonic() - began))
            if self.auth is not None:
                self._setup_auth()
        except BaseException:
            if to_start:
                self.say(f"start failed; stopping the node(s) started now: {to_start}")
                self._stop_nodes(to_start, kill=False, timeout=30)
            raise
        self.say(
            f"cluster ready in {time.monotonic() - began:.1f}s: contact points "
            f"{','.join(self.hosts)} port {CQL_PORT}, local DC {DATACENTER}"
        )

    @contextmanager
    def running(self, timeout: float = 180.0) -> Iterator[CassandraCluster]:
        """The cluster started (and usable) for the ``with`` block, stopped after it however it ends."""
        self.start(wait=True, timeout=timeout)
        try:
            yield self
        finally:
            self.stop()

    def start_node(self, i: int, wait: bool = True, timeout: float = 180.0) -> None:
        """(Re)start one node with its existing data, e.g. after ``stop_node(i, kill=True)``."""
        if self.is_running(i):
            self.say(f"node{i} is already running")
        else:
            lib = install(self.cache_dir, self.say)
            self._check_ports_free(i)
            self._launch(i, lib)
            self.say(f"node{i} starting on {self.hosts[i]} (pid {self.pid(i)})")
        if wait:
            self.wait_ready(timeout=timeout, nodes=[i])

    def confine(self, cpus: Collection[int]) -> None:
        """Run every live node on ``cpus`` only, from now on (see ``processes.confine``)."""
        for i in range(self.size):
            pid = self.pid(i)
            if pid is not None:
                threads = processes.confine(pid, cpus)
                self.say(f"node{i} confined to CPU {','.join(map(str, sorted(cpus)))} ({threads} threads)")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every node: SIGTERM (Cassandra drains), SIGKILL whatever outlives ``timeout``."""
        self._stop_nodes(range(self.size), kill=False, timeout=timeout)

    def stop_node(self, i: int, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop one node; ``kill=True`` sends SIGKILL at once, like a crashed machine."""
        self._stop_nodes([i], kill=kill, timeout=timeout)

    def _stop_nodes(self, nodes: Iterable[int], kill: bool, timeout: float) -> None:
        nodes = list(nodes)
        running = {i: pid for i in nodes if (pid := self.pid(i)) is not None}
        sig = signal.SIGKILL if kill else signal.SIGTERM
        for i, pid in running.items():
            self.say(f"node{i} ({self.hosts[i]}): sending {sig.name} to pid {pid}")
            processes.signal_group(pid, sig)
        deadline = time.monotonic() + timeout
        while any(self._alive(i, pid) for i, pid in running.items()):
            if time.monotonic() > deadline:
                for i, pid in running.items():
                    if self._alive(i, pid):
                        self.say(f"node{i} did not stop within {timeout:.0f}s; SIGKILL")
                        processes.signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                timeout = 30
            time.sleep(0.2)
        for i in running:
            self._children.pop(i, None)
            self.say(f"node{i} stopped")
        for i in nodes:
            self._pid_file(i).unlink(missing_ok=True)

    def _alive(self, i: int, pid: int) -> bool:
        """Until every thread of the JVM is gone: only then are its ports and files released."""
        child = self._children.get(i)
        if child is not None and child.pid == pid:
            # Our own child: poll() reaps it, which the kernel allows only once all threads
            # have exited (and a reaped child cannot linger as a zombie of the caller).
            return child.poll() is None
        return not processes.process_gone(pid)

    # ---- CQL: readiness and auth

    def superuser_credentials(self) -> tuple[str, str] | None:
        """The superuser login for admin work (None without auth)."""
        return roles.superuser_candidates(self.base_dir)[0] if self.auth else None

    @contextmanager
    def connect(self, i: int, timeout: float = 15.0) -> Iterator[Session]:
        """``with cluster.connect(i) as session``: a driver session pinned to node ``i``, as the
        superuser when auth is on; the driver is shut down on exit."""
        candidates = roles.superuser_candidates(self.base_dir) if self.auth else [None]
        with cql.login(self.hosts[i], candidates, timeout) as (session, _):
            yield session

    def is_ready(self, i: int) -> bool:
        """Whether node ``i`` answers ``SELECT release_version FROM system.local``."""
        try:
            return self.release_version(i) is not None
        except cql.CQL_ERRORS:
            return False

    def release_version(self, i: int) -> str | None:
        with self.connect(i, timeout=5.0) as session:
            return readiness.release_version(session)

    def wait_ready(self, timeout: float = 180.0, nodes: Sequence[int] | None = None) -> None:
        """Wait until ``nodes`` (default: all) answer CQL and, when all nodes of the cluster
        are running, until each sees all others up. Raises ``CassandraError`` with log tails."""
        readiness.wait_ready(self, timeout, nodes)

    def _setup_auth(self) -> None:
        assert self.auth is not None
        roles.setup_auth(self.hosts[0], self.auth, self.size, self.base_dir, self.say)

    # ---- status

    def log_tail(self, i: int, lines: int = 30) -> str:
        """The end of node ``i``'s system.log and stdout (JVM errors land only in the latter)."""
        parts = []
        for path in (self.log_file(i), self._stdout_file(i)):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or f"(no log for node{i} yet)"

    def status(self) -> list[dict[str, Any]]:
        """One dict per node: index, host, pid (or None) and CQL readiness."""
        out = []
        for i, host in enumerate(self.hosts):
            pid = self.pid(i)
            out.append(
                {
                    "node": i,
                    "host": host,
                    "pid": pid,
                    "ready": pid is not None and self.is_ready(i),
                    "log": str(self.log_file(i)),
                }
            )
        return out

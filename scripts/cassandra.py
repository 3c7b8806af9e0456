#!/usr/bin/env python3
"""Run a real Apache Cassandra (one node or a small cluster) on loopback, without Docker.

Why this exists: the project stores its records in Cassandra and its tests must exercise the
real thing (consistency levels, node failures, authentication), but this machine has no Docker
and reaches only package registries. Cassandra's server jar and its whole runtime classpath
are on Maven Central, so ``install`` resolves them with ``mvn`` and the rest of this script
does what ccm does: one JVM per node, each on its own 127.0.0.x address.

CLI (runs with plain ``python3``: the launcher uses only the standard library, because it has
to work before any virtualenv exists)::

    python3 scripts/cassandra.py install
    python3 scripts/cassandra.py start  --dir .run/cassandra --nodes 1 [--hosts 127.0.0.1]
        [--jmx-port-base 7199] [--heap 512m] [--fast-start]
        [--auth --app-user U --app-password P] [--timeout 180]
    python3 scripts/cassandra.py stop   --dir .run/cassandra
    python3 scripts/cassandra.py status --dir .run/cassandra

Python (repo root on ``sys.path``)::

    from scripts.cassandra import AuthConfig, CassandraCluster
    cluster = CassandraCluster(base_dir, hosts=["127.0.0.21", "127.0.0.22", "127.0.0.23"],
                               jmx_port_base=7300, auth=AuthConfig("digits", "secret"),
                               fast_start=True)
    cluster.start(timeout=180)           # install() + launch all + wait until usable
    cluster.stop_node(1, kill=True)      # kill -9, for fault tests
    cluster.start_node(1)                # restart it with its data
    cluster.stop()                       # SIGTERM, then SIGKILL; no JVM is left behind

Nodes are numbered from 0: node ``i`` listens on ``hosts[i]`` and keeps everything it owns
(config, data, commit log, logs, pid file) under ``<base_dir>/node<i>/``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CASSANDRA_VERSION = "5.0.8"
REPO_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = Path(__file__).resolve().parent / "cassandra"
POM = RESOURCES / "pom.xml"
LOGBACK = RESOURCES / "logback.xml"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "cassandra" / CASSANDRA_VERSION
# Cassandra 5.0 runs on Java 11 or 17 only (it installs a SecurityManager, which newer JDKs
# refuse), and `java` on PATH here is a newer Temurin: name Debian's JDK 17 explicitly.
DEFAULT_JAVA = Path(os.environ.get("CASSANDRA_JAVA", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"))

CQL_PORT = 9042
STORAGE_PORT = 7000
DATACENTER = "datacenter1"  # what SimpleSnitch reports; clients use it as their local DC
DEFAULT_SUPERUSER = ("cassandra", "cassandra")
SUPERUSER_SECRET = "superuser.secret"
CLUSTER_FILE = "cluster.json"
DAEMON_CLASS = "org.apache.cassandra.service.CassandraDaemon"

# From Cassandra's conf/jvm17-server.options: the internals it reaches into on Java 17.
# Without them the daemon fails during start-up with InaccessibleObjectException.
_JDK17_MODULE_FLAGS = [
    *(
        f"--add-exports={m}=ALL-UNNAMED"
        for m in (
            "java.base/jdk.internal.misc",
            "java.base/jdk.internal.ref",
            "java.base/sun.nio.ch",
            "java.base/java.lang.ref",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "jdk.unsupported/sun.misc",
        )
    ),
    *(
        f"--add-opens={m}=ALL-UNNAMED"
        for m in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.nio",
            "java.base/java.lang",
            "java.base/java.lang.reflect",
            "java.base/java.util",
            "java.base/java.util.concurrent",
            "java.base/java.util.concurrent.atomic",
        )
    ),
]


class CassandraError(RuntimeError):
    """Installing, starting or stopping Cassandra failed; the message says why and what to do."""


def _say(message: str) -> None:
    # stderr, so that `status` output on stdout stays machine-readable.
    print(f"cassandra: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# install


def _apt_install(package: str) -> None:
    """Install a Debian package, but only where that cannot surprise anyone: as root."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CassandraError(
            f"{package} is missing; install it with: sudo apt-get install -y {package}"
        )
    _say(f"{package} is missing; installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            raise CassandraError(f"`{' '.join(cmd)}` failed")


def _ensure_java(java: Path) -> Path:
    if not java.is_file():
        _apt_install("openjdk-17-jre-headless")
    if not java.is_file():
        raise CassandraError(f"{java} not found (set CASSANDRA_JAVA to a Java 17 `java`)")
    return java


def _ensure_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        _apt_install("maven")
        mvn = shutil.which("mvn")
    if mvn is None:
        raise CassandraError("mvn not found even after installing maven")
    return mvn


def install(cache_dir: Path = DEFAULT_CACHE_DIR, say: Callable[[str], None] = _say) -> Path:
    """Resolve Cassandra's runtime classpath from Maven Central into ``<cache_dir>/lib``.

    Idempotent and instant once done: a stamp file records the version and the pom it was
    resolved from, so a changed pom re-resolves and an interrupted run never counts as done
    (jars go to ``lib.partial`` and are renamed into place only after Maven succeeded).
    A lock file serialises concurrent callers (say ``make run`` and a test run).
    Returns the lib directory.
    """
    lib = cache_dir / "lib"
    stamp = cache_dir / "installed.json"
    wanted = {
        "version": CASSANDRA_VERSION,
        "pom_sha256": hashlib.sha256(POM.read_bytes()).hexdigest(),
    }

    def installed() -> bool:
        try:
            return (
                json.loads(stamp.read_text()) == wanted
                and (lib / f"cassandra-all-{CASSANDRA_VERSION}.jar").is_file()
            )
        except (OSError, ValueError):
            return False

    if installed():
        return lib
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed():
            _resolve(lib, stamp, wanted, say)
    return lib


def _resolve(lib: Path, stamp: Path, wanted: dict[str, str], say: Callable[[str], None]) -> None:
    mvn = _ensure_mvn()
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    say(f"resolving org.apache.cassandra:cassandra-all:{CASSANDRA_VERSION} with Maven into {lib}")
    started = time.monotonic()
    cmd = [
        mvn,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        f"-Dcassandra.version={CASSANDRA_VERSION}",
        f"-DoutputDirectory={partial}",
        "dependency:copy-dependencies",
    ]
    result = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise CassandraError(f"`{' '.join(cmd)}` failed:\n{result.stdout[-4000:]}")
    for required in (f"cassandra-all-{CASSANDRA_VERSION}.jar", "jamm-*.jar"):
        if not list(partial.glob(required)):
            raise CassandraError(f"Maven finished but {required} is not in {partial}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    stamp.write_text(json.dumps(wanted) + "\n")
    jars = len(list(lib.glob("*.jar")))
    say(f"installed {jars} jars in {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------------------------
# A minimal CQL native-protocol (v4) client.
#
# Why not the DataStax driver: start-up must work with plain python3 before any virtualenv
# exists. Readiness needs more than an open port (the port opens before the node can answer),
# and the auth bootstrap needs a handful of statements, so this speaks just enough of the
# protocol: STARTUP, PLAIN SASL auth, QUERY at a chosen consistency, and decoding of rows.

_CONSISTENCY = {"ONE": 0x0001, "QUORUM": 0x0004, "ALL": 0x0005, "LOCAL_ONE": 0x000A}
_ERR_BAD_CREDENTIALS = 0x0100


class CqlError(Exception):
    """An ERROR frame from the server (``code`` as in the native protocol spec)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"[{code:#06x}] {message}")
        self.code = code


def _cql_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">H", len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def read_int(self) -> int:
        value: int = struct.unpack(">i", self.take(4))[0]
        return value

    def read_short(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def read_string(self) -> str:
        return self.take(self.read_short()).decode()

    def read_bytes(self) -> bytes | None:
        n = self.read_int()
        return None if n < 0 else self.take(n)

    def read_option(self) -> tuple[int, Any]:
        kind = self.read_short()
        if kind == 0x0000:  # custom
            return kind, self.read_string()
        if kind in (0x0020, 0x0022):  # list, set
            return kind, self.read_option()
        if kind == 0x0021:  # map
            return kind, (self.read_option(), self.read_option())
        if kind == 0x0030:  # UDT
            self.read_string()  # keyspace
            self.read_string()  # type name
            return kind, [
                (self.read_string(), self.read_option()) for _ in range(self.read_short())
            ]
        if kind == 0x0031:  # tuple
            return kind, [self.read_option() for _ in range(self.read_short())]
        return kind, None


def _decode(kind: tuple[int, Any], raw: bytes | None) -> Any:
    """Decode the few types the script reads; anything else stays as bytes."""
    if raw is None:
        return None
    tid, sub = kind
    if tid in (0x0001, 0x000D):  # ascii, varchar
        return raw.decode()
    if tid in (0x0002, 0x0009):  # bigint, int
        return int.from_bytes(raw, "big", signed=True)
    if tid == 0x0004:
        return raw != b"\x00"
    if tid in (0x000C, 0x000F):  # uuid, timeuuid
        return str(uuid.UUID(bytes=raw))
    if tid == 0x0010:
        return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    if tid in (0x0020, 0x0022, 0x0021):
        r = _Reader(raw)
        n = r.read_int()
        if tid == 0x0021:
            return {
                _decode(sub[0], r.read_bytes()): _decode(sub[1], r.read_bytes()) for _ in range(n)
            }
        return [_decode(sub, r.read_bytes()) for _ in range(n)]
    return raw


class MiniCql:
    """One connection to one node; ``query`` returns rows as tuples.

    Used as a context manager. Raises ``CqlError`` for server errors and ``OSError`` when the
    node cannot be reached.
    """

    def __init__(
        self,
        host: str,
        port: int = CQL_PORT,
        credentials: tuple[str, str] | None = None,
        timeout: float = 15.0,
    ) -> None:
        self._stream = 0
        self._sock = socket.create_connection((host, port), timeout=timeout)
        try:
            body = struct.pack(">H", 1) + _cql_string("CQL_VERSION") + _cql_string("3.0.0")
            opcode, _ = self._request(0x01, body)
            if opcode == 0x03:  # AUTHENTICATE
                if credentials is None:
                    raise CqlError(_ERR_BAD_CREDENTIALS, "server requires a login")
                token = b"\x00" + credentials[0].encode() + b"\x00" + credentials[1].encode()
                opcode, _ = self._request(0x0F, struct.pack(">i", len(token)) + token)
                if opcode != 0x10:  # AUTH_SUCCESS
                    raise CqlError(0, f"unexpected opcode {opcode:#x} after AUTH_RESPONSE")
            elif opcode != 0x02:  # READY
                raise CqlError(0, f"unexpected opcode {opcode:#x} after STARTUP")
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self) -> MiniCql:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the node")
            buf += chunk
        return bytes(buf)

    def _request(self, opcode: int, body: bytes) -> tuple[int, _Reader]:
        self._stream = (self._stream + 1) % 32768
        self._sock.sendall(struct.pack(">BBhBi", 0x04, 0, self._stream, opcode, len(body)) + body)
        while True:
            _, flags, stream, reply_op, length = struct.unpack(">BBhBi", self._recv(9))
            reply = _Reader(self._recv(length))
            if stream == self._stream:
                break  # anything else would be an unsolicited event; we register for none
        if flags & 0x02:  # tracing id
            reply.take(16)
        if flags & 0x08:  # server warnings, e.g. about replication settings
            for _ in range(reply.read_short()):
                reply.read_string()
        if reply_op == 0x00:
            code = reply.read_int()
            raise CqlError(code, reply.read_string())
        return reply_op, reply

    def query(self, cql: str, consistency: str = "ONE") -> list[tuple[Any, ...]]:
        body = struct.pack(">i", len(cql.encode())) + cql.encode()
        body += struct.pack(">HB", _CONSISTENCY[consistency], 0)
        _, reply = self._request(0x07, body)
        if reply.read_int() != 2:  # not ROWS: void, set keyspace or schema change
            return []
        flags, ncols = reply.read_int(), reply.read_int()
        if flags & 0x0002:  # has more pages: never expected for the small reads done here
            reply.read_bytes()
        global_spec = flags & 0x0001
        if global_spec:
            reply.read_string()  # keyspace
            reply.read_string()  # table
        kinds = []
        for _ in range(ncols):
            if not global_spec:
                reply.read_string()  # keyspace
                reply.read_string()  # table
            reply.read_string()  # column name
            kinds.append(reply.read_option())
        return [
            tuple(_decode(kind, reply.read_bytes()) for kind in kinds)
            for _ in range(reply.read_int())
        ]


def _cql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# The cluster


@dataclass(frozen=True)
class AuthConfig:
    """Turn on password authentication and authorization, with one application role.

    ``app_password`` may be None only for clusters whose app role already exists (e.g. a
    cluster object rebuilt with ``CassandraCluster.from_dir`` to stop or restart nodes).
    """

    app_user: str
    app_password: str | None


def balanced_tokens(count: int) -> list[int]:
    """One Murmur3 token per node, evenly spaced, so all nodes can start at the same time.

    With ``num_tokens: 1`` and fixed tokens no node bootstraps or allocates tokens by looking
    at the others, which is what normally forces starting a cluster one node at a time.
    """
    step = 2**64 // count
    return [-(2**63) + i * step for i in range(count)]


class CassandraCluster:
    """A Cassandra cluster of ``len(hosts)`` nodes on loopback addresses, one JVM each.

    Every resource a caller could collide on is a parameter: the addresses (each node binds
    7000 and 9042 on its own address), the JMX ports (``jmx_port_base + i``, bound on
    127.0.0.1) and the directory. ``make run`` and the test suite therefore run side by side.

    ``heap`` sets -Xms and -Xmx; expect ~0.9 GB resident per node at 512m, because Cassandra
    mlockall()s its memory when it may (it may as root). ``fast_start`` trades peak speed for a
    much faster start (see ``_command``). ``auth`` turns on passwords (see ``_setup_auth``).
    ``say`` receives progress messages (default: stderr). ``settings(i, yaml)`` may rewrite
    node i's cassandra.yaml (the chart's tests boot the chart's settings with it).
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
        say: Callable[[str], None] = _say,
        settings: Callable[[int, str], str] | None = None,
    ) -> None:
        if not hosts:
            raise ValueError("at least one host is needed")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"hosts must be distinct: {hosts}")
        if auth is not None and auth.app_user == DEFAULT_SUPERUSER[0]:
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
        # Rewrites node i's cassandra.yaml before it is written (tests boot other configs).
        self.settings = settings
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def from_dir(cls, base_dir: Path | str, **overrides: Any) -> CassandraCluster:
        """Rebuild the cluster object that last ran in ``base_dir`` (for stop/status/restart)."""
        saved = _read_cluster_file(Path(base_dir))
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

    def _config_file(self, i: int) -> Path:
        return self.node_dir(i) / "conf" / "cassandra.yaml"

    def _pid_file(self, i: int) -> Path:
        return self.node_dir(i) / "cassandra.pid"

    def _stdout_file(self, i: int) -> Path:
        return self.node_dir(i) / "logs" / "stdout.log"

    # ---- configuration

    def _yaml(self, i: int) -> str:
        node = self.node_dir(i)
        seeds = ",".join(f"{h}:{STORAGE_PORT}" for h in self.hosts)
        if self.auth:
            auth = (
                "authenticator: PasswordAuthenticator\n"
                "authorizer: CassandraAuthorizer\n"
                "role_manager: CassandraRoleManager\n"
            )
        else:
            auth = "authenticator: AllowAllAuthenticator\nauthorizer: AllowAllAuthorizer\n"
        # JSON is YAML: quoting every value through json.dumps keeps paths with odd characters
        # from changing the meaning of the file.
        q = json.dumps
        return f"""\
# Written by scripts/cassandra.py on every start; edits here are overwritten.
cluster_name: {q(self.cluster_name)}
num_tokens: 1
initial_token: {balanced_tokens(self.size)[i]}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: {q(seeds)}
listen_address: {self.hosts[i]}
rpc_address: {self.hosts[i]}
storage_port: {STORAGE_PORT}
native_transport_port: {CQL_PORT}
start_native_transport: true
# Fixed tokens and every node a seed: nothing to stream, so nodes may start together.
auto_bootstrap: false
# Tests drop and recreate keyspaces constantly; snapshots would only fill the disk.
auto_snapshot: false
{auth}commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [{q(str(node / "data"))}]
commitlog_directory: {q(str(node / "commitlog"))}
saved_caches_directory: {q(str(node / "saved_caches"))}
hints_directory: {q(str(node / "hints"))}
cdc_raw_directory: {q(str(node / "cdc_raw"))}
# Smaller off-heap caches and commit log segments than the defaults, so that three nodes and
# a test suite fit comfortably on a small machine.
file_cache_size: 32MiB
key_cache_size: 16MiB
commitlog_segment_size: 8MiB
"""

    def _command(self, i: int, lib: Path) -> list[str]:
        node = self.node_dir(i)
        jamm = sorted(lib.glob("jamm-*.jar"))[-1]
        return [
            str(self.java),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:+CrashOnOutOfMemoryError",
            # Cassandra's own choice: keeps the JVM from writing hsperfdata on every GC.
            "-XX:+PerfDisableSharedMem",
            # Start-up is CPU-bound, mostly JIT compiling: measured on 2 cores, C1 alone cuts a
            # node's start-up CPU from ~17 s to ~10 s and a 3-node start from ~49 s to ~31 s,
            # at the price of lower peak throughput. Hence opt-in, for test clusters.
            *(["-XX:TieredStopAtLevel=1"] if self.fast_start else []),
            # Cassandra measures object sizes with jamm; the JVM refuses to start without it.
            f"-javaagent:{jamm}",
            *_JDK17_MODULE_FLAGS,
            "-Djdk.attach.allowAttachSelf=true",
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dcassandra.config={self._config_file(i).as_uri()}",
            f"-Dcassandra.storagedir={node}",
            f"-Dcassandra.logdir={node / 'logs'}",
            f"-Dlogback.configurationFile={node / 'conf' / 'logback.xml'}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.jmx.local.port={self.jmx_port_base + i}",
            # Start-up speed for throwaway clusters (see the notes on running from Maven):
            # don't idle waiting for gossip to settle, create the default superuser at once,
            # and hash passwords cheaply.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-Dcassandra.auth_bcrypt_gensalt_log2_rounds=4",
            # system_auth replicated to every node from the first moment: with the default
            # RF 1, nodes that start together can each write the default superuser while they
            # still see only themselves, leaving it on a node that is not its replica (and the
            # login as `cassandra` then fails). With RF N that write waits for a quorum.
            f"-Dcassandra.system_auth.default_rf={self.size}",
            "-cp",
            f"{lib}/*",
            DAEMON_CLASS,
        ]

    def _write_node_files(self, i: int) -> None:
        node = self.node_dir(i)
        for sub in ("conf", "logs", "data", "commitlog", "saved_caches", "hints", "cdc_raw"):
            (node / sub).mkdir(parents=True, exist_ok=True)
        text = self._yaml(i)
        self._config_file(i).write_text(self.settings(i, text) if self.settings else text)
        shutil.copyfile(LOGBACK, node / "conf" / "logback.xml")

    def _check_dir_matches(self) -> None:
        """Refuse to reuse a directory with other addresses: its data names the old peers."""
        saved = _read_cluster_file(self.base_dir)
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
        """The live JVM of node ``i``, or None.

        The pid file is only a hint: the process must also be a live (not zombie) JVM whose
        command line names this node's config, so a recycled pid is never mistaken for the
        node, and a JVM whose pid file went missing is still found (by scanning /proc).
        """
        marker = self._config_file(i).as_uri()
        try:
            pid = int(self._pid_file(i).read_text().strip())
            if _is_node_process(pid, marker):
                return pid
        except (OSError, ValueError):
            pass
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _is_node_process(int(entry.name), marker):
                return int(entry.name)
        return None

    def is_running(self, i: int) -> bool:
        return self.pid(i) is not None

    def _launch(self, i: int, lib: Path) -> None:
        self._write_node_files(i)
        out = open(self._stdout_file(i), "ab")  # noqa: SIM115 - handed to the child
        try:
            # A session of its own: the JVM outlives this script and is not hit by a Ctrl-C
            # meant for the caller; `stop` signals the whole process group.
            proc = subprocess.Popen(
                self._command(i, lib),
                cwd=self.node_dir(i),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        self._children[i] = proc
        self._pid_file(i).write_text(f"{proc.pid}\n")

    def _check_ports_free(self, i: int) -> None:
        host = self.hosts[i]
        for addr, port in (
            (host, CQL_PORT),
            (host, STORAGE_PORT),
            ("127.0.0.1", self.jmx_port_base + i),
        ):
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
        _ensure_java(self.java)
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

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every node: SIGTERM (Cassandra drains), SIGKILL whatever outlives ``timeout``."""
        self._stop_nodes(range(self.size), kill=False, timeout=timeout)

    def stop_node(self, i: int, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop one node; ``kill=True`` sends SIGKILL at once, like a crashed machine."""
        self._stop_nodes([i], kill=kill, timeout=timeout)

    def _stop_nodes(self, nodes: Iterable[int], kill: bool, timeout: float) -> None:
        running = {i: pid for i in nodes if (pid := self.pid(i)) is not None}
        sig = signal.SIGKILL if kill else signal.SIGTERM
        for i, pid in running.items():
            self.say(f"node{i} ({self.hosts[i]}): sending {sig.name} to pid {pid}")
            _signal_group(pid, sig)
        deadline = time.monotonic() + timeout
        while any(self._alive(i, pid) for i, pid in running.items()):
            if time.monotonic() > deadline:
                for i, pid in running.items():
                    if self._alive(i, pid):
                        self.say(f"node{i} did not stop within {timeout:.0f}s; SIGKILL")
                        _signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                timeout = 30
            time.sleep(0.2)
        for i in running:
            self._pid_file(i).unlink(missing_ok=True)
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
        return not _process_gone(pid)

    # ---- readiness

    def _secret_file(self, pending: bool = False) -> Path:
        return self.base_dir / (SUPERUSER_SECRET + (".pending" if pending else ""))

    def _superuser_candidates(self) -> list[tuple[str, str]]:
        """Rotated password, one being rotated (a start interrupted mid-way), then default."""
        candidates = []
        for path in (self._secret_file(), self._secret_file(pending=True)):
            if path.is_file():
                candidates.append((DEFAULT_SUPERUSER[0], path.read_text().strip()))
        return [*candidates, DEFAULT_SUPERUSER]

    def superuser_credentials(self) -> tuple[str, str] | None:
        """The superuser login for admin work (None without auth)."""
        return self._superuser_candidates()[0] if self.auth else None

    def connect(self, i: int, timeout: float = 15.0) -> MiniCql:
        """An admin CQL connection to node ``i`` (as the superuser when auth is on)."""
        return self._login(i, timeout)[0]

    def _login(self, i: int, timeout: float = 15.0) -> tuple[MiniCql, tuple[str, str] | None]:
        if self.auth is None:
            return MiniCql(self.hosts[i], CQL_PORT, None, timeout), None
        error: CqlError | None = None
        for creds in self._superuser_candidates():
            try:
                return MiniCql(self.hosts[i], CQL_PORT, creds, timeout), creds
            except CqlError as exc:
                if exc.code != _ERR_BAD_CREDENTIALS:
                    raise
                error = exc
        assert error is not None
        raise error

    def is_ready(self, i: int) -> bool:
        """Whether node ``i`` answers ``SELECT release_version FROM system.local``."""
        try:
            return self.release_version(i) is not None
        except (OSError, CqlError):
            return False

    def release_version(self, i: int) -> str | None:
        with self.connect(i, timeout=5.0) as cql:
            rows = cql.query("SELECT release_version FROM system.local")
        return rows[0][0] if rows else None

    def _sees_all_replicas(self, i: int) -> bool:
        """Node ``i`` knows every peer and gets answers from all of them at consistency ALL.

        system_distributed is replicated to three nodes by default (every node of a 1-3 node
        cluster), so an ALL read of it fails with Unavailable or a timeout until this node
        considers all the others up and they respond.
        """
        with self.connect(i) as cql:
            if len(cql.query("SELECT peer FROM system.peers_v2")) < self.size - 1:
                return False
            cql.query(
                "SELECT status FROM system_distributed.view_build_status "
                "WHERE keyspace_name = 'readiness' AND view_name = 'probe'",
                consistency="ALL",
            )
        return True

    def wait_ready(self, timeout: float = 180.0, nodes: Sequence[int] | None = None) -> None:
        """Wait until ``nodes`` (default: all) answer CQL and, when all nodes of the cluster
        are running, until each sees all others up. Raises ``CassandraError`` with log tails."""
        began = time.monotonic()
        deadline = began + timeout
        pending = list(range(self.size) if nodes is None else nodes)
        errors: dict[int, str] = {}

        def check_alive(i: int) -> None:
            if not self.is_running(i):
                raise CassandraError(
                    f"node{i} ({self.hosts[i]}) exited during start-up\n{self.log_tail(i)}"
                )

        def timed_out(what: str) -> CassandraError:
            tails = "\n".join(
                f"node{i}: last error: {errors.get(i, '-')}\n{self.log_tail(i)}" for i in pending
            )
            return CassandraError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")

        while pending:
            for i in list(pending):
                check_alive(i)
                try:
                    version = self.release_version(i)
                except (OSError, CqlError) as exc:
                    errors[i] = str(exc)
                    continue
                pending.remove(i)
                self.say(
                    f"node{i} ({self.hosts[i]}) answers CQL: Cassandra {version}, "
                    f"{time.monotonic() - began:.1f}s"
                )
            if pending:
                if time.monotonic() > deadline:
                    raise timed_out("CQL")
                time.sleep(0.5)

        if self.size == 1 or not all(self.is_running(i) for i in range(self.size)):
            return
        pending = list(range(self.size))
        while pending:
            for i in list(pending):
                check_alive(i)
                try:
                    if self._sees_all_replicas(i):
                        pending.remove(i)
                        continue
                    errors[i] = "not all peers known yet"
                except (OSError, CqlError) as exc:
                    errors[i] = str(exc)
            if pending:
                if time.monotonic() > deadline:
                    raise timed_out("the nodes to see each other")
                time.sleep(0.5)
        self.say(f"all {self.size} nodes see each other, {time.monotonic() - began:.1f}s")

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

    # ---- auth

    def _wait_schema_agreement(self, cql: MiniCql, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            versions = {row[0] for row in cql.query("SELECT schema_version FROM system.local")}
            versions |= {row[0] for row in cql.query("SELECT schema_version FROM system.peers_v2")}
            if len(versions) == 1:
                return
            if time.monotonic() > deadline:
                raise CassandraError(f"schema versions still disagree: {versions}")
            time.sleep(0.5)

    def _setup_auth(self) -> None:
        """Make the cluster safe to hand to the application; idempotent, runs on every start.

        - system_auth goes to NetworkTopologyStrategy with one replica per node, so logins keep
          working with a node down. An ALL read afterwards copies rows written under the old
          placement to every new replica (what `nodetool repair system_auth` would do).
        - The app role can log in and gets CREATE, SELECT and MODIFY ON ALL KEYSPACES: it
          creates its keyspace and tables at start-up (Cassandra then grants the creator every
          permission on them) and can still read and write them if another role created them.
          ALL KEYSPACES does not reach the system keyspaces in Cassandra 5.0 (checked: such a
          role is refused SELECT and MODIFY on system_auth.roles), so the app cannot read
          password hashes or edit roles, and it cannot ALTER or DROP keyspaces it did not create.
        - The well-known cassandra/cassandra superuser gets a random password, kept in
          <dir>/superuser.secret (mode 0600) for this script's later starts.
        """
        assert self.auth is not None
        secret_file, pending = self._secret_file(), self._secret_file(pending=True)
        cql, creds = self._login(0)
        assert creds is not None  # auth is on
        with cql:
            if pending.is_file() and creds[1] == pending.read_text().strip():
                pending.replace(secret_file)  # the last start changed the password, then died
            rows = cql.query(
                "SELECT replication FROM system_schema.keyspaces "
                "WHERE keyspace_name = 'system_auth'"
            )
            wanted = {
                "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
                DATACENTER: str(self.size),
            }
            if not rows or rows[0][0] != wanted:
                self.say(f"system_auth: NetworkTopologyStrategy {{'{DATACENTER}': {self.size}}}")
                cql.query(
                    "ALTER KEYSPACE system_auth WITH replication = {'class': "
                    f"'NetworkTopologyStrategy', '{DATACENTER}': {self.size}}}"
                )
                self._wait_schema_agreement(cql)
                for table in ("roles", "role_members", "role_permissions"):
                    cql.query(f"SELECT * FROM system_auth.{table}", consistency="ALL")

            user = _cql_literal(self.auth.app_user)
            exists = cql.query(
                f"SELECT role FROM system_auth.roles WHERE role = {user}", consistency="QUORUM"
            )
            app_password = self.auth.app_password
            if app_password is not None and not self._can_login(self.auth.app_user, app_password):
                # ALTER only when needed: Cassandra 5 refuses a role's second password change
                # within 5 s, and a restart should not rewrite what is already right.
                verb = "ALTER" if exists else "CREATE"
                password = _cql_literal(app_password)
                cql.query(f"{verb} ROLE {user} WITH PASSWORD = {password} AND LOGIN = true")
            elif not exists:
                raise CassandraError(f"role {self.auth.app_user} does not exist: give a password")
            for permission in ("CREATE", "SELECT", "MODIFY"):
                cql.query(f"GRANT {permission} ON ALL KEYSPACES TO {user}")
            self.say(
                f"app role {self.auth.app_user!r}: LOGIN; CREATE, SELECT, MODIFY ON ALL KEYSPACES"
            )

            if creds == DEFAULT_SUPERUSER:
                new_password = secrets.token_urlsafe(24)
                fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(new_password + "\n")
                superuser = DEFAULT_SUPERUSER[0]
                cql.query(f"ALTER ROLE {superuser} WITH PASSWORD = {_cql_literal(new_password)}")
                pending.replace(secret_file)
                self.say(f"default superuser password replaced; it is in {secret_file}")

    def _can_login(self, user: str, password: str) -> bool:
        try:
            MiniCql(self.hosts[0], CQL_PORT, (user, password)).close()
        except CqlError as exc:
            if exc.code == _ERR_BAD_CREDENTIALS:
                return False
            raise
        return True

    # ---- status

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


def _read_cluster_file(base_dir: Path) -> dict[str, Any] | None:
    try:
        saved: dict[str, Any] = json.loads((base_dir / CLUSTER_FILE).read_text())
        return saved
    except FileNotFoundError:
        return None


def _is_node_process(pid: int, marker: str) -> bool:
    """A live process (zombies count as dead) whose command line contains ``marker``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return DAEMON_CLASS.encode() in cmdline and f"-Dcassandra.config={marker}".encode() in cmdline


def _process_gone(pid: int) -> bool:
    """Whether every thread of ``pid`` has exited.

    A zombie main thread alone is not enough: after SIGKILL the JVM's main thread can show as
    a zombie while other threads, still holding the node's sockets, are being torn down.
    """
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return True
    return state in ("Z", "X") and threads <= 1


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the JVM leads its own session (start_new_session=True)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


# --------------------------------------------------------------------------------------------
# CLI


def _cluster_from_args(args: argparse.Namespace) -> CassandraCluster:
    saved = _read_cluster_file(Path(args.dir)) or {}
    if args.hosts:
        hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
        if args.nodes is not None and args.nodes != len(hosts):
            raise CassandraError(f"--nodes {args.nodes} but {len(hosts)} --hosts given")
    elif args.nodes is not None:
        hosts = [f"127.0.0.{i + 1}" for i in range(args.nodes)]
    else:
        hosts = saved.get("hosts", ["127.0.0.1"])
    # Auth stays on for a directory once it was on: silently reopening a cluster without
    # passwords would be a surprise. Delete the directory to go back.
    auth = None
    if args.auth or saved.get("auth"):
        user = args.app_user or saved.get("app_user") or "digits"
        auth = AuthConfig(user, args.app_password)
    return CassandraCluster(
        args.dir,
        hosts=hosts,
        jmx_port_base=args.jmx_port_base or saved.get("jmx_port_base", 7199),
        heap=args.heap or saved.get("heap", "512m"),
        fast_start=args.fast_start,  # per start: a test run's choice must not stick to make run
        auth=auth,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="resolve Cassandra's jars into .cache (once)")
    for name, text in (
        ("start", "start the nodes that are not running and wait until usable"),
        ("stop", "stop all nodes (SIGTERM, then SIGKILL)"),
        ("status", "print each node's pid and readiness; exit 3 unless all are ready"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", required=True, type=Path, help="cluster directory")
    start = sub.choices["start"]
    start.add_argument("--nodes", type=int, help="node count (default 1, or as last time)")
    start.add_argument(
        "--hosts", help="comma-separated loopback addresses, one per node (default 127.0.0.1..N)"
    )
    start.add_argument(
        "--jmx-port-base", type=int, help="node i uses JMX port base+i (default 7199)"
    )
    start.add_argument("--heap", help="JVM heap per node (default 512m)")
    start.add_argument(
        "--fast-start",
        action="store_true",
        help="C1 JIT only: starts much faster on few cores, runs slower; for test clusters",
    )
    start.add_argument(
        "--auth",
        action="store_true",
        help="passwords on; creates the app role and replaces the default superuser's "
        "password (see CassandraCluster._setup_auth)",
    )
    start.add_argument(
        "--app-user",
        default=os.environ.get("CASSANDRA_APP_USER"),
        help="application role (env CASSANDRA_APP_USER, default digits)",
    )
    start.add_argument(
        "--app-password",
        default=os.environ.get("CASSANDRA_APP_PASSWORD"),
        help="its password (env CASSANDRA_APP_PASSWORD; prefer the env var)",
    )
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait")
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            print(install())
            return 0
        if args.command == "start":
            cluster = _cluster_from_args(args)
            if cluster.auth and not cluster.auth.app_password:
                raise CassandraError("--auth needs --app-password or CASSANDRA_APP_PASSWORD")
            cluster.start(timeout=args.timeout)
            return 0
        if _read_cluster_file(args.dir) is None:
            _say(f"no cluster in {args.dir}")
            return 0 if args.command == "stop" else 3
        cluster = CassandraCluster.from_dir(args.dir)
        if args.command == "stop":
            cluster.stop()
            return 0
        nodes = cluster.status()
        for node in nodes:
            state = (
                "stopped"
                if node["pid"] is None
                else (f"pid {node['pid']}, " + ("ready" if node["ready"] else "not answering CQL"))
            )
            print(f"node{node['node']} {node['host']}:{CQL_PORT} {state}")
        return 0 if all(n["ready"] for n in nodes) else 3
    except (CassandraError, CqlError, OSError) as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

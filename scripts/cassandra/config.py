"""What one node runs with: its cassandra.yaml, its directories and its JVM command line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.cassandra.common import CQL_PORT, STORAGE_PORT

LOGBACK = Path(__file__).resolve().parent / "logback.xml"
DAEMON_CLASS = "org.apache.cassandra.service.CassandraDaemon"
NODE_SUBDIRS = ("conf", "logs", "data", "commitlog", "saved_caches", "hints", "cdc_raw")

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


def config_file(node_dir: Path) -> Path:
    return node_dir / "conf" / "cassandra.yaml"


def cassandra_yaml(cluster_name: str, hosts: Sequence[str], i: int, node_dir: Path, auth: bool) -> str:
    """Node ``i``'s cassandra.yaml: every node a seed, fixed tokens, everything under ``node_dir``."""
    seeds = ",".join(f"{h}:{STORAGE_PORT}" for h in hosts)
    if auth:
        authn = (
            "authenticator: PasswordAuthenticator\n"
            "authorizer: CassandraAuthorizer\n"
            "role_manager: CassandraRoleManager\n"
        )
    else:
        authn = "authenticator: AllowAllAuthenticator\nauthorizer: AllowAllAuthorizer\n"
    # JSON is YAML: quoting every value through json.dumps keeps paths with odd characters
    # from changing the meaning of the file.
    q = json.dumps
    return f"""\
# Written by scripts/cassandra/ on every start; edits here are overwritten.
cluster_name: {q(cluster_name)}
num_tokens: 1
initial_token: {balanced_tokens(len(hosts))[i]}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: {q(seeds)}
listen_address: {hosts[i]}
rpc_address: {hosts[i]}
storage_port: {STORAGE_PORT}
native_transport_port: {CQL_PORT}
start_native_transport: true
# Fixed tokens and every node a seed: nothing to stream, so nodes may start together.
auto_bootstrap: false
# Tests drop and recreate keyspaces constantly; snapshots would only fill the disk.
auto_snapshot: false
{authn}commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [{q(str(node_dir / "data"))}]
commitlog_directory: {q(str(node_dir / "commitlog"))}
saved_caches_directory: {q(str(node_dir / "saved_caches"))}
hints_directory: {q(str(node_dir / "hints"))}
cdc_raw_directory: {q(str(node_dir / "cdc_raw"))}
# Smaller off-heap caches and commit log segments than the defaults, so that three nodes and
# a test suite fit comfortably on a small machine.
file_cache_size: 32MiB
key_cache_size: 16MiB
commitlog_segment_size: 8MiB
# The recorder writes up to 16 records (at most ~32 KiB) to a logged batch; the default warning
# at 5 KiB would log every one. The refusal stays at the default 50 KiB.
batch_size_warn_threshold: 40KiB
"""


def write_node_files(node_dir: Path, yaml_text: str) -> None:
    """Create the node's directories; write its cassandra.yaml and logback.xml."""
    for sub in NODE_SUBDIRS:
        (node_dir / sub).mkdir(parents=True, exist_ok=True)
    config_file(node_dir).write_text(yaml_text)
    shutil.copyfile(LOGBACK, node_dir / "conf" / "logback.xml")


def jvm_command(
    *,
    java: Path,
    lib: Path,
    node_dir: Path,
    heap: str,
    jmx_port: int,
    cluster_size: int,
    fast_start: bool,
) -> list[str]:
    """The node's ``java ... CassandraDaemon`` command line (Cassandra's launch script, distilled)."""
    jamm = sorted(lib.glob("jamm-*.jar"))[-1]
    return [
        str(java),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+CrashOnOutOfMemoryError",
        # Cassandra's own choice: keeps the JVM from writing hsperfdata on every GC.
        "-XX:+PerfDisableSharedMem",
        # Start-up is CPU-bound, mostly JIT compiling: measured on 2 cores, C1 alone cuts a
        # node's start-up CPU from ~17 s to ~10 s and a 3-node start from ~49 s to ~31 s,
        # at the price of lower peak throughput. Hence opt-in, for test clusters.
        *(["-XX:TieredStopAtLevel=1"] if fast_start else []),
        # Cassandra measures object sizes with jamm; the JVM refuses to start without it.
        f"-javaagent:{jamm}",
        *_JDK17_MODULE_FLAGS,
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Djava.net.preferIPv4Stack=true",
        # Also the marker by which the node's process is recognised (see processes.py).
        f"-Dcassandra.config={config_file(node_dir).as_uri()}",
        f"-Dcassandra.storagedir={node_dir}",
        f"-Dcassandra.logdir={node_dir / 'logs'}",
        f"-Dlogback.configurationFile={node_dir / 'conf' / 'logback.xml'}",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.jmx.local.port={jmx_port}",
        # Start-up speed for throwaway clusters: don't idle waiting for gossip to settle,
        # create the default superuser at once, and hash passwords cheaply.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        "-Dcassandra.auth_bcrypt_gensalt_log2_rounds=4",
        # system_auth replicated to every node from the first moment: with the default
        # RF 1, nodes that start together can each write the default superuser while they
        # still see only themselves, leaving it on a node that is not its replica (and the
        # login as `cassandra` then fails). With RF N that write waits for a quorum.
        f"-Dcassandra.system_auth.default_rf={cluster_size}",
        "-cp",
        f"{lib}/*",
        DAEMON_CLASS,
    ]

"""Run a real Apache Cassandra (one node or a small cluster) on loopback, without Docker.

Why this exists: the project stores its records in Cassandra and its tests must exercise the
real thing (consistency levels, node failures, authentication), but this machine has no Docker
and reaches only package registries. Cassandra's server jar and its whole runtime classpath
are on Maven Central, so ``install`` resolves them with ``mvn`` and the rest does what ccm
does: one JVM per node, each on its own 127.0.0.x address.

- ``install.py``: Java 17, Maven, the jars (``pom.xml``, cached under ``.cache/cassandra``)
- ``config.py``: a node's cassandra.yaml (``logback.xml`` beside it) and JVM command line
- ``cluster.py``: ``CassandraCluster``, the nodes' processes from start to stop
- ``readiness.py``, ``auth.py``: when a cluster is usable; its roles and passwords
- ``cql.py``: short driver sessions pinned to one node; ``processes.py``: JVMs in /proc
- ``cli.py``: ``python -m scripts.cassandra install|start|stop|status`` (flags there)

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

if __name__ != "scripts.cassandra":
    # Named like the DataStax driver's package, which this one imports: with scripts/ itself on
    # sys.path (say `python scripts/devstack.py`) this folder would hide the driver.
    raise ImportError(f"{__file__} is the package scripts.cassandra; run from the repo root with -m")

from scripts.cassandra.cluster import CassandraCluster
from scripts.cassandra.common import CASSANDRA_VERSION, CQL_PORT, DATACENTER, CassandraError
from scripts.cassandra.config import AuthConfig, balanced_tokens
from scripts.cassandra.install import install

__all__ = [
    "CASSANDRA_VERSION",
    "CQL_PORT",
    "DATACENTER",
    "AuthConfig",
    "CassandraCluster",
    "CassandraError",
    "balanced_tokens",
    "install",
]

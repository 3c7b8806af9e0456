"""Run a real Apache Cassandra (one node or a small cluster) on loopback, without Docker.

From the repo root, with the project's virtualenv (the readiness checks use its DataStax driver)::

    python -m scripts.cassandra install
    python -m scripts.cassandra start  --dir .run/cassandra --nodes 1 [--hosts 127.0.0.1]
        [--jmx-port-base 7199] [--heap 512m] [--fast-start]
        [--auth --app-user U --app-password P] [--timeout 180]
    python -m scripts.cassandra stop   --dir .run/cassandra
    python -m scripts.cassandra status --dir .run/cassandra
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from scripts.cassandra import cql
from scripts.cassandra.cluster import CassandraCluster, read_cluster_file
from scripts.cassandra.common import CQL_PORT, CassandraError, say
from scripts.cassandra.config import AuthConfig
from scripts.cassandra.install import install


def _cluster_from_args(args: argparse.Namespace) -> CassandraCluster:
    saved = read_cluster_file(Path(args.dir)) or {}
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.cassandra", description=__doc__.split("\n\n")[0])
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
    start.add_argument("--jmx-port-base", type=int, help="node i uses JMX port base+i (default 7199)")
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
        "password (see scripts/cassandra/auth.py)",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
        if read_cluster_file(args.dir) is None:
            say(f"no cluster in {args.dir}")
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
    except (CassandraError, *cql.CQL_ERRORS) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130

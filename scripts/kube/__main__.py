"""``python -m scripts.kube tools|up|down``: the chart's tool chain and a local control plane.

- ``tools``: build or install every tool (helm, kwok, kubeconform, kube-score, the control
  plane, promtool, hadolint) into the cache outside the clone, and print where each is.
- ``up DIR``: start etcd, kube-apiserver, controller-manager, scheduler and kwok with three
  fake nodes in three zones; the kubeconfig is DIR/kubeconfig. Stays in the foreground until
  Ctrl-C, then stops everything.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from scripts.kube import tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.kube", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tools", help="build or install every tool into the cache")
    up = sub.add_parser("up", help="run a control plane with three fake nodes until Ctrl-C")
    up.add_argument("dir", type=Path, help="state directory (kubeconfig, logs, etcd data)")
    args = parser.parse_args(argv)

    if args.command == "tools":
        print(json.dumps(tools.install_all(), indent=2))
        return 0

    from scripts.kube.cluster import ControlPlane

    plane = ControlPlane(args.dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with plane:
        print(f"control plane up; export KUBECONFIG={plane.kubeconfig}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

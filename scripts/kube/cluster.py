"""A real Kubernetes control plane on loopback, with kwok's fake nodes in place of kubelets.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real programs (built by
``tools.py``); kwok plays the kubelets: it marks pods scheduled on its nodes Running and Ready
and completes Job pods, but runs no container. So the apiserver's validation and admission, the
scheduler's (anti-)affinity and spreading, the Deployment, StatefulSet, Job, endpoint, PV and
disruption controllers all act for real, while probes, images and network traffic do not exist.

Every port is picked free at start, so a control plane never meets ``make run``, another test
session, or another control plane.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
from pathlib import Path
from typing import IO, Any

import yaml

from scripts.devstack import free_port
from scripts.kube import tools
from scripts.waiting import http_ok, wait_until

ZONES = ("zone-a", "zone-b", "zone-c")
STORAGE_CLASS = "standard"
_TOKEN = "digits-test-admin-token"  # a throwaway cluster on loopback: a fixed token is fine
_KWOK_ANNOTATION = "kwok.x-k8s.io/node"


class ControlPlaneError(RuntimeError):
    pass


class ControlPlane:
    """``with ControlPlane(dir) as plane:`` runs a control plane with ``nodes`` fake nodes."""

    def __init__(self, state_dir: Path, nodes: int = 3, volumes: int = 8) -> None:
        self.dir = Path(state_dir).resolve()
        self.node_names = [f"kwok-node-{i}" for i in range(nodes)]
        self.volume_count = volumes
        self.kubeconfig = self.dir / "kubeconfig"
        self._procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.apiserver_port = 0

    # ---- lifecycle

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        bins = {name: tools.require(name) for name in (*tools.CONTROL_PLANE, "kwok")}
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = self.dir / "pki"
        pki.mkdir(exist_ok=True)
        sa_key = pki / "service-account.key"
        if not sa_key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        tokens = self.dir / "tokens.csv"
        tokens.write_text(f"{_TOKEN},admin,admin,system:masters\n")

        etcd_port, etcd_peer = free_port(), free_port()
        self._spawn(
            "etcd",
            [
                str(bins["etcd"]),
                "--name=digits-test",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=digits-test=http://127.0.0.1:{etcd_peer}",
                # A throwaway test store: no fsync per write keeps it fast on a busy disk.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self.apiserver_port = free_port()
        self._spawn(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={pki}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The `kubernetes` Service would point at 127.0.0.1, which Endpoints refuse.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        self._write_kubeconfig()
        self._wait_apiserver(timeout)

        self._spawn(
            "kube-controller-manager",
            [
                str(bins["kube-controller-manager"]),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki / 'apiserver.crt'}",
                "--profiling=false",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bins["kube-scheduler"]),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--profiling=false",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(bins["kwok"]),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={_KWOK_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{free_port()}",
                # Renew node leases (the node-heartbeat-with-lease stage updates node status
                # only every ~10 min): without leases the nodes turn NotReady after 50 s.
                "--node-lease-duration-seconds=40",
                *[f"--config={stage}" for stage in tools.kwok_stages()],
            ],
        )
        self.apply(self._nodes_and_storage())
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")

    def stop(self) -> None:
        """SIGTERM in reverse order of start (kwok first, etcd last), SIGKILL after 20 s."""
        while self._procs:
            name, proc, log = self._procs.pop()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append((name, proc, log))

    def _check_alive(self) -> None:
        for name, proc, _ in self._procs:
            if proc.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # ---- API access

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "digits-test", "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": _TOKEN}}],
            "contexts": [{"name": "digits-test", "context": {"cluster": "digits-test", "user": "admin"}}],
            "current-context": "digits-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _wait_apiserver(self, timeout: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its own self-signed certificate, on loopback
        ready = http_ok(f"{self.server}/readyz", {"Authorization": f"Bearer {_TOKEN}"}, context)

        def died() -> str | None:
            try:
                self._check_alive()
            except ControlPlaneError as exc:
                return str(exc)
            return None

        try:
            wait_until(ready, timeout, "kube-apiserver", died, interval=0.5)
        except TimeoutError as exc:
            raise ControlPlaneError(f"{exc}\n{self.log_tail('kube-apiserver')}") from None

    @property
    def env(self) -> dict[str, str]:
        """Environment for kubectl and helm: this cluster, and nothing from the user's home."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.dir / "kube-cache"),
            "HELM_CACHE_HOME": str(self.dir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.dir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.dir / "helm" / "data"),
        }

    def run_kubectl(self, *args: str, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tools.require("kubectl")), *args],
            env=self.env, input=input, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 180) -> str:
        """kubectl's output; ControlPlaneError with its messages if it fails."""
        result = self.run_kubectl(*args, input=input, timeout=timeout)
        if result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def state(self) -> str:
        """What a stuck rollout needs looked at: nodes, workloads, pods, claims, recent events,
        and the tails of the scheduler's, the controllers' and kwok's logs."""
        parts = []
        for args in (("get", "nodes", "-o", "wide"),
                     ("get", "statefulsets,deployments,jobs,pods,pvc,pv", "-A", "-o", "wide"),
                     ("get", "events", "-A", "--sort-by=.lastTimestamp")):  # fmt: skip
            result = self.run_kubectl(*args, timeout=30)
            parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
        for name in ("kube-scheduler", "kube-controller-manager", "kwok"):
            parts.append(f"--- {name}.log (tail)\n{self.log_tail(name, 25)}")
        return "\n".join(parts)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))

    # ---- the fake cluster's contents

    def _nodes_and_storage(self) -> list[dict[str, Any]]:
        """Nodes in three zones, a default StorageClass, and hostPath PersistentVolumes for it.

        There is no dynamic provisioner: the claims bind to these volumes (which nothing ever
        writes, since no container runs). A claim binds when the scheduler places its first pod
        (WaitForFirstConsumer, the local-volume recipe). With Immediate binding every Cassandra
        pod was first refused ("unbound immediate PersistentVolumeClaims") and then depended on
        the scheduler retrying it when its claim bound, whose fallback is 5 minutes: one CI run's
        install hung past helm's 5-minute timeout.
        """
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        nodes = [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {_KWOK_ANNOTATION: "fake"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                        "type": "kwok",
                    },
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            for i, name in enumerate(self.node_names)
        ]
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain",
        }
        volumes = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"pv-{i}"},
                "spec": {
                    "capacity": {"storage": "50Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": {"path": str(self.dir / "volumes" / f"pv-{i}")},
                },
            }
            for i in range(self.volume_count)
        ]
        return [*nodes, storage_class, *volumes]

"""The chart against a real Kubernetes control plane: install, upgrade, drain, uninstall.

etcd, kube-apiserver, controller-manager and scheduler are the real programs (scripts/kube);
kwok stands in for the kubelets (it marks pods Running and Ready and completes Job pods, but runs
no container), so what is proven here is everything the API server, the scheduler and the
controllers decide: validation and admission, placement under (anti-)affinity, rollouts, PVC
binding, endpoints, hooks, PDBs and eviction. Probes, images and traffic are for images/ and a
real cluster (see the README's "What CI proves").

The tests run in file order against one release; each says what it expects the one before it
to have left.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scripts.kube.cluster import ControlPlane, ZONES
from scripts.waiting import wait_until
from tests.chart.conftest import CHART, helm

NAMESPACE = "digits"
CASSANDRA = "app.kubernetes.io/component=cassandra"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory):
    with ControlPlane(tmp_path_factory.mktemp("controlplane")) as control_plane:
        yield control_plane


def _pods(plane: ControlPlane, selector: str) -> list[dict[str, Any]]:
    return plane.get("pods", "-n", NAMESPACE, "-l", selector)["items"]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _wait(what: str, check, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    wait_until(check, timeout, what, interval=0.5)


def _events(plane: ControlPlane, kind: str, name: str) -> list[dict[str, Any]]:
    items = plane.get("events", "-n", NAMESPACE, "--field-selector", f"involvedObject.kind={kind},involvedObject.name={name}")["items"]  # fmt: skip
    return sorted(items, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "", e["metadata"]["resourceVersion"]))


def _helm_waiting(plane: ControlPlane, *args: str, minutes: int = 3) -> str:
    """``helm <args> --wait`` with helm's own timeout (an install takes ~7 s); when it fails or
    hangs, the cluster's state says why (a subprocess timeout past helm's, so that helm reports
    first)."""
    try:
        return helm(*args, "--wait", "--timeout", f"{minutes}m", env=plane.env, timeout=minutes * 60 + 60).stdout
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        raise AssertionError(f"{exc}\n\nThe cluster then:\n{plane.state()}") from None


def test_install_with_default_values(plane: ControlPlane) -> None:
    started = time.monotonic()
    out = _helm_waiting(
        plane, "install", "digits", str(CHART), "--namespace", NAMESPACE, "--create-namespace", "--wait-for-jobs"
    )
    print(f"helm install --wait: {time.monotonic() - started:.1f} s")
    assert "STATUS: deployed" in out
    assert "curl -F image=@seven.png" in out  # NOTES.txt tells the user what to do next

    # A Deployment under an HPA has no replica count of its own (an upgrade must not reset the
    # scale): it starts at one pod, and the HPA's first sync (within 15 s) raises it to the
    # minimum. The later tests count on that scale.
    minimum = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"] for h in plane.get("hpa", "-n", NAMESPACE)["items"]}  # fmt: skip
    assert minimum, "the default values autoscale the gateway and the recognizer"

    def scaled() -> bool:
        deployments = {d["metadata"]["name"]: d for d in plane.get("deployments", "-n", NAMESPACE)["items"]}
        return all(deployments[name]["status"].get("readyReplicas", 0) >= n for name, n in minimum.items())

    _wait("the HPAs to scale their Deployments to the minimum", scaled, timeout=60)

    for deployment in plane.get("deployments", "-n", NAMESPACE)["items"]:
        status = deployment["status"]
        assert status.get("readyReplicas", 0) == status["replicas"] >= 1, deployment["metadata"]["name"]

    statefulset = plane.get("statefulset", "-n", NAMESPACE, "digits-cassandra")
    assert statefulset["status"]["readyReplicas"] == 3
    pods = _pods(plane, CASSANDRA)
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(pods) == 3 and len(nodes) == 3, "anti-affinity must put each Cassandra node on its own machine"
    zones = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in plane.get("nodes")["items"]}  # fmt: skip
    assert {zones[n] for n in nodes} == set(ZONES)

    claims = plane.get("pvc", "-n", NAMESPACE)["items"]
    # Each claim was bound as its pod was placed: no pod waited on the scheduler's retry of an
    # unbound claim (cluster.py's StorageClass says why that matters).
    refused = plane.get("events", "-n", NAMESPACE, "--field-selector", "reason=FailedScheduling")["items"]
    assert not refused, [e["message"] for e in refused]
    assert sorted(c["metadata"]["name"] for c in claims) == [f"data-digits-cassandra-{i}" for i in range(3)]
    assert all(c["status"]["phase"] == "Bound" for c in claims)

    # The schema hook ran to completion (and, hook-succeeded, was then deleted).
    assert any(e["reason"] == "Completed" for e in _events(plane, "Job", "digits-migrate"))

    # Every Service has ready endpoints: its selector matches pods, its ports name theirs.
    for service in plane.get("services", "-n", NAMESPACE)["items"]:
        name = service["metadata"]["name"]
        slices = plane.get("endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={name}")["items"]
        ready = [e for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready")]
        assert ready, f"service {name} has no ready endpoints"
        assert {p["port"] for s in slices for p in s.get("ports") or []}, name

    for pdb in plane.get("pdb", "-n", NAMESPACE)["items"]:
        assert pdb["status"]["disruptionsAllowed"] == 1, pdb["metadata"]["name"]


def test_upgrade_rolls_the_services_without_touching_cassandra(plane: ControlPlane) -> None:
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(plane, CASSANDRA)}
    ours = ("digits-cassandra-auth", "digits-recorder")
    secrets_before = {name: plane.get("secret", "-n", NAMESPACE, name)["data"] for name in ours}
    replicas = {d["metadata"]["name"]: d["status"]["replicas"] for d in plane.get("deployments", "-n", NAMESPACE)["items"]}

    # Watch the Deployments while the upgrade runs: with maxUnavailable 0, ready pods never
    # drop below what was there.
    lowest = dict(replicas)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for d in plane.get("deployments", "-n", NAMESPACE)["items"]:
                name = d["metadata"]["name"]
                lowest[name] = min(lowest[name], d["status"].get("availableReplicas", 0))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _helm_waiting(
            plane, "upgrade", "digits", str(CHART), "--namespace", NAMESPACE, "--set", "image.tag=0.1.1",
            "--wait-for-jobs",
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()

    for deployment in plane.get("deployments", "-n", NAMESPACE)["items"]:
        name = deployment["metadata"]["name"]
        images = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
        assert all(image.endswith(":0.1.1") for image in images), images
        assert deployment["status"]["updatedReplicas"] == deployment["status"]["readyReplicas"] == replicas[name]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        pods = _pods(plane, f"app.kubernetes.io/component={component}")
        _wait(f"old {name} pods to go", lambda: all(
            c["image"].endswith(":0.1.1") for p in _pods(plane, f"app.kubernetes.io/component={component}")
            for c in p["spec"]["containers"]))  # fmt: skip
        assert pods
        assert lowest[name] >= replicas[name], f"{name} dropped to {lowest[name]} available during the rollout"
        scaling = [e["message"] for e in _events(plane, "Deployment", name) if e["reason"] == "ScalingReplicaSet"]
        assert any("Scaled up" in m for m in scaling) and any("Scaled down" in m for m in scaling)

    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(plane, CASSANDRA)}
    assert after == before, "an upgrade of the digits images must not restart Cassandra"
    # Generated passwords and the page-token key survive the upgrade (Cassandra's roles were
    # made with those passwords).
    assert {name: plane.get("secret", "-n", NAMESPACE, name)["data"] for name in ours} == secrets_before
    completed = [e for e in _events(plane, "Job", "digits-migrate") if e["reason"] == "Completed"]
    assert sum(e.get("count", 1) for e in completed) >= 2, "the schema hook runs again on upgrade"


def test_drain_takes_one_cassandra_node_and_the_pdb_holds_the_rest(plane: ControlPlane) -> None:
    pods = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _pods(plane, CASSANDRA)}
    first, second = pods["digits-cassandra-1"], pods["digits-cassandra-2"]
    plane.kubectl("drain", first, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s")
    try:
        # The evicted pod comes back, but cannot be placed: the other two nodes hold Cassandra
        # pods and the drained one is cordoned.
        def one_down() -> bool:
            current = _pods(plane, CASSANDRA)
            return len(current) == 3 and sum(_ready(p) for p in current) == 2

        _wait("the drained Cassandra pod to be replaced", one_down)
        pending = [p for p in _pods(plane, CASSANDRA) if not _ready(p)]
        assert pending[0]["metadata"]["name"] == "digits-cassandra-1"
        assert pending[0]["status"]["phase"] == "Pending"
        _wait("the PDB to allow no further disruption",
              lambda: plane.get("pdb", "-n", NAMESPACE, "digits-cassandra")["status"]["disruptionsAllowed"] == 0)  # fmt: skip

        # A second drain must stop at the PDB: the Cassandra pod on that node stays.
        result = plane.run_kubectl("drain", second, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=15s")  # fmt: skip
        assert result.returncode != 0, result.stdout
        assert "violate the pod's disruption budget" in result.stdout + result.stderr
        survivor = plane.get("pod", "-n", NAMESPACE, "digits-cassandra-2")
        assert survivor["metadata"]["uid"] and "deletionTimestamp" not in survivor["metadata"]
        assert _ready(survivor)
        assert sum(_ready(p) for p in _pods(plane, CASSANDRA)) == 2
        # Every other service kept at least one ready pod throughout (their PDBs allow one).
        for component in ("gateway", "recognizer", "recorder"):
            assert any(_ready(p) for p in _pods(plane, f"app.kubernetes.io/component={component}")), component
    finally:
        plane.kubectl("uncordon", first, second)
    _wait("all three Cassandra nodes to be back", lambda: sum(_ready(p) for p in _pods(plane, CASSANDRA)) == 3)
    assert len({p["spec"]["nodeName"] for p in _pods(plane, CASSANDRA)}) == 3


def test_uninstall_leaves_exactly_the_data_and_its_passwords(plane: ControlPlane) -> None:
    _helm_waiting(plane, "uninstall", "digits", "--namespace", NAMESPACE)
    _wait("the pods to go", lambda: not plane.get("pods", "-n", NAMESPACE)["items"])
    kinds = "deployments,statefulsets,replicasets,jobs,services,configmaps,secrets,pvc,pdb,hpa,ingresses,networkpolicies,serviceaccounts"  # noqa: E501
    left = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in plane.get(kinds, "-n", NAMESPACE)["items"])
    assert left == [
        # What every namespace has.
        "ConfigMap/kube-root-ca.crt",
        # What the README says stays: the data, and the passwords its roles were made with.
        "PersistentVolumeClaim/data-digits-cassandra-0",
        "PersistentVolumeClaim/data-digits-cassandra-1",
        "PersistentVolumeClaim/data-digits-cassandra-2",
        "Secret/digits-cassandra-auth",
        "ServiceAccount/default",
    ], left


def test_bad_objects_are_refused_by_the_api_server(plane: ControlPlane, tmp_path: Path) -> None:
    """What no schema in the chart catches, the API server does: a rendered chart whose
    storage size is not a quantity (forced past values.schema.json) is rejected."""
    text = helm("template", "digits", str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.34.4").stdout
    broken = text.replace('storage: "10Gi"', 'storage: "10Gb"')
    assert broken != text
    plane.kubectl("create", "namespace", "dry-run-check")
    good = plane.run_kubectl("apply", "--dry-run=server", "-n", "dry-run-check", "-f", "-", input=text)
    assert good.returncode == 0, good.stderr
    assert "statefulset.apps/digits-cassandra created (server dry run)" in good.stdout
    bad = plane.run_kubectl("apply", "--dry-run=server", "-n", "dry-run-check", "-f", "-", input=broken)
    assert bad.returncode != 0
    assert "statefulset.apps/digits-cassandra created" not in bad.stdout
    assert "quantities must match the regular expression" in bad.stderr, bad.stderr

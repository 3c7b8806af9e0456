"""The chart's static rung: helm lint, strict schema validation offline, kube-score, promtool,
and values that must be refused before anything reaches a cluster."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from scripts.kube import tools
from tests.chart.conftest import CHART, PROFILES, helm, profile_id, render_text, template_args
from tests.helpers import ROOT

# Kinds whose schemas are CRDs (Prometheus Operator), not part of Kubernetes' own: kubeconform
# has no offline schema for them, so test_policies.py and promtool check them instead.
CRD_KINDS = ("ServiceMonitor", "PrometheusRule")

# kube-score checks we turn off, each for a reason:
# - container-image-pull-policy: it wants `Always`; our tags are pinned (Cassandra by digest),
#   and `Always` breaks images loaded straight into nodes (kind load, minikube image load).
# - deployment-has-host-podantiaffinity: the Deployments spread with
#   topologySpreadConstraints over zones and hosts instead (test_policies checks them), which
#   unlike required anti-affinity still schedules when replicas outnumber nodes.
# - CPU limits (--ignore-container-cpu-limit): CFS throttling adds latency under bursts; CPU
#   requests reserve the share, memory has limits (test_policies requires both).
KUBE_SCORE_IGNORED = ("container-image-pull-policy", "deployment-has-host-podantiaffinity")
# Laptop profiles run one replica of each Deployment on purpose.
KUBE_SCORE_IGNORED_SMALL = ("deployment-replicas",)


@pytest.mark.parametrize("profile", PROFILES, ids=profile_id)
def test_helm_lint_strict(profile: Path | None) -> None:
    result = helm("lint", "--strict", str(CHART), *template_args(profile))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("profile", PROFILES, ids=profile_id)
def test_rendered_objects_match_kubernetes_1_34_schemas_strictly(profile: Path | None, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(render_text(profile))
    result = subprocess.run(
        [
            str(tools.require("kubeconform")),
            "-strict",
            "-summary",
            "-output", "json",
            "-kubernetes-version", tools.KUBERNETES_SCHEMA_VERSION,
            "-schema-location", tools.kubeconform_schema_location(),
            "-skip", ",".join(CRD_KINDS),
            str(manifest),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report["resources"], indent=1)
    summary = report["summary"]
    assert summary["invalid"] == 0 and summary["errors"] == 0
    assert summary["valid"] >= 25, summary  # every object was really checked, not skipped


@pytest.mark.parametrize("profile", PROFILES, ids=profile_id)
def test_kube_score_finds_nothing(profile: Path | None, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(render_text(profile))
    ignored = list(KUBE_SCORE_IGNORED)
    if profile is not None and profile.stem in ("values-kind-small", "values-minikube"):
        ignored += KUBE_SCORE_IGNORED_SMALL
    result = subprocess.run(
        [
            str(tools.require("kube-score")), "score", str(manifest),
            "--output-format", "ci",
            "--ignore-container-cpu-limit",
            "--ignore-test", ",".join(ignored),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    findings = [line for line in result.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))]
    assert not findings, "\n".join(findings)
    assert result.returncode == 0
    assert sum(line.startswith("[OK]") for line in result.stdout.splitlines()) > 50


# Each case: a --set that must be refused at `helm template` time, and what the message says.
BAD_VALUES = [
    ("recorder.config.replicationFactor=4", "replicationFactor (4) cannot exceed cassandra.replicaCount (3)"),
    ("cassandra.persistence.size=", "/cassandra/persistence/size"),
    ("cassandra.persistence.size=1Gb", "does not match pattern"),
    ("gateway.containerPorts.http=99999", "maximum"),
    ("recognizer.containerPorts.grpc=0", "minimum"),
    ("recognizer.containerPorts.grpc=9101", "metrics port (9101) must differ"),
    ("cassandra.seedCount=4", "seedCount (4) cannot exceed"),
    ("cassandra.commitlogSync=sometimes", "value must be one of"),
    ("recorder.config.writeConsistency=MOST", "value must be one of"),
    ("gateway.preStopDelaySeconds=60", "must be shorter than gateway.terminationGracePeriodSeconds"),
    ("cassandra.resources.limits.memory=300Mi", "heap would be below 256 MiB"),
    ("gateway.autoscaling.minReplicas=9", "minReplicas (9) exceeds maxReplicas"),
    ("cassandra.image.digest=sha256:nothex", "does not match pattern"),
    ("gateway.typo=1", "additional properties 'typo' not allowed"),
]


@pytest.mark.parametrize("setting,message", BAD_VALUES, ids=[s for s, _ in BAD_VALUES])
def test_bad_values_are_refused_at_template_time(setting: str, message: str) -> None:
    result = helm("template", "digits", str(CHART), *template_args(None, setting), check=False)
    assert result.returncode != 0, f"{setting} was accepted"
    assert message in result.stderr, result.stderr


def test_a_smaller_ring_with_a_matching_replication_factor_renders() -> None:
    """The check compares the two values; it does not merely refuse any change."""
    text = render_text(None, "cassandra.replicaCount=5", "recorder.config.replicationFactor=5")
    assert "replicas: 5" in text


def _rules_for_namespace(folder: Path) -> Path:
    rules = folder / "alerts.yaml"
    rules.write_text((CHART / "files" / "alerts.yaml").read_text().replace("$namespace", "digits"))
    return rules


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(tools.require("promtool")), "check", "rules", str(_rules_for_namespace(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_promtool_alert_unit_tests_pass(tmp_path: Path) -> None:
    """alerts_test.yaml feeds series to the rules and expects exactly these alerts."""
    _rules_for_namespace(tmp_path)
    (tmp_path / "alerts_test.yaml").write_text((Path(__file__).parent / "alerts_test.yaml").read_text())
    result = subprocess.run(
        [str(tools.require("promtool")), "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _metric_names_in_code() -> set[str]:
    names = set()
    for path in [*ROOT.glob("services/*/*.py"), *ROOT.glob("digits/*.py")]:
        names |= set(re.findall(r'"(digits_[a-z_]+)"', path.read_text()))
    return names


def _queried_metrics(text: str) -> set[str]:
    suffixes = ("_bucket", "_count", "_sum")
    found = set()
    for name in re.findall(r"\b(digits_[a-z_]+)", text):
        for suffix in suffixes:
            name = name.removesuffix(suffix)
        found.add(name)
    return found


def test_dashboard_and_alerts_query_only_metrics_the_services_export() -> None:
    exported = _metric_names_in_code()
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    alerts = (CHART / "files" / "alerts.yaml").read_text()
    for source, text in (("dashboard", queries), ("alerts", alerts)):
        unknown = _queried_metrics(text) - exported
        assert not unknown, f"the {source} queries metrics no service exports: {unknown}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ("inference", "batch size", "requests per second", "error", "cassandra write latency"):
        assert wanted in titles

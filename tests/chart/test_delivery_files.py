"""skaffold.yaml and k8s/: what can be proven without skaffold (not on any registry reachable
here) and without a container engine for kind."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.kube import tools
from tests.chart.conftest import CHART, one, render
from tests.helpers import ROOT

SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
RELEASE = SKAFFOLD["manifests"]["helm"]["releases"][0]
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _template_var(artifact: str, what: str) -> str:
    # skaffold's names for an artifact's built image: non-alphanumerics become underscores.
    return "{{.IMAGE_%s_%s}}" % (what, re.sub(r"[^A-Za-z0-9]", "_", artifact))


def test_every_artifact_builds_from_an_existing_context_and_dockerfile() -> None:
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert len(artifacts) == 3
    for artifact in artifacts:
        context = ROOT / artifact["context"]
        assert context.is_dir()
        assert (context / artifact["docker"]["dockerfile"]).is_file()


def test_artifact_images_are_the_charts_and_each_service_gets_its_own() -> None:
    templates = RELEASE["setValueTemplates"]
    for artifact in SKAFFOLD["build"]["artifacts"]:
        image = artifact["image"]
        service = image.removeprefix("digits-")
        dockerfile = artifact["docker"]["dockerfile"]
        assert dockerfile == f"services/{service}/Dockerfile", "the artifact builds another service's image"
        assert VALUES[service]["image"]["repository"] == image
        assert templates[f"{service}.image.repository"] == _template_var(image, "REPO")
        assert templates[f"{service}.image.tag"] == _template_var(image, "TAG")


def test_the_chart_renders_with_what_skaffold_sets() -> None:
    built = {a["image"]: f"registry.example/{a['image']}" for a in SKAFFOLD["build"]["artifacts"]}
    sets = []
    for key, template in RELEASE["setValueTemplates"].items():
        value = template
        for image, repo in built.items():
            value = value.replace(_template_var(image, "REPO"), repo).replace(_template_var(image, "TAG"), "abc123")
        assert "{{" not in value, f"{key}: {template} names no artifact"
        sets.append(f"{key}={value}")
    objects = render(None, *sets)
    for service in ("gateway", "recognizer", "recorder"):
        deployment = one(objects, "Deployment", f"digits-{service}")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.example/digits-{service}:abc123"
    job = one(objects, "Job", "digits-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/digits-recorder:abc123"


def test_release_profiles_and_port_forward_match_the_chart() -> None:
    assert (ROOT / RELEASE["chartPath"]) == CHART
    profiles = {p["name"]: p for p in SKAFFOLD["profiles"]}
    assert set(profiles) == {"kind", "minikube"}
    for name, profile in profiles.items():
        (patch,) = profile["patches"]
        assert patch["path"] == "/manifests/helm/releases/0/valuesFiles"
        for values_file in patch["value"]:
            assert (ROOT / values_file).is_file()
            assert render(ROOT / values_file)  # and it renders
    assert profiles["kind"]["activation"] == [{"kubeContext": "kind-digits"}]  # the cluster kind-up.sh makes
    forward = SKAFFOLD["portForward"][0]
    service = one(render(), "Service", forward["resourceName"])
    assert forward["namespace"] == RELEASE["namespace"]
    assert forward["port"] in {p["port"] for p in service["spec"]["ports"]}


# ---- kind


@pytest.fixture(scope="module")
def fake_docker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `docker` that answers kind's provider checks and refuses everything else: kind then
    validates the whole config and stops where it would pull its node image."""
    folder = tmp_path_factory.mktemp("fake-docker")
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  info) echo \'{"CgroupDriver":"systemd","CgroupVersion":"2","SecurityOptions":["name=seccomp"]}\' ;;\n'
        "  ps) ;;\n"
        '  *) echo "fake docker: refusing $*" >&2; exit 1 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return folder


def _kind_create(config: Path, fake_docker: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{fake_docker}:{os.environ['PATH']}", "KIND_EXPERIMENTAL_PROVIDER": "docker"}
    return subprocess.run(
        [str(tools.require("kind")), "create", "cluster", "--config", str(config), "--name", "digits-validate"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_kind_accepts_the_cluster_config(fake_docker: Path) -> None:
    result = _kind_create(ROOT / "k8s" / "kind-config.yaml", fake_docker)
    output = result.stdout + result.stderr
    assert "Ensuring node image" in output, output


def test_kind_would_refuse_a_broken_config(fake_docker: Path, tmp_path: Path) -> None:
    """The check above can fail: a config with a role kind does not know never gets that far."""
    broken = tmp_path / "kind-config.yaml"
    broken.write_text((ROOT / "k8s" / "kind-config.yaml").read_text().replace("role: worker", "role: wizard", 1))
    result = _kind_create(broken, fake_docker)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Ensuring node image" not in output
    assert "wizard" in output, output


def test_kind_config_has_an_ingress_node_and_three_zoned_workers() -> None:
    config: dict[str, Any] = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())
    control, *workers = config["nodes"]
    assert control["role"] == "control-plane"
    assert {m["containerPort"] for m in control["extraPortMappings"]} == {80, 443}
    assert control["labels"]["ingress-ready"] == "true"
    assert [w["role"] for w in workers] == ["worker"] * 3
    assert len({w["labels"]["topology.kubernetes.io/zone"] for w in workers}) == 3

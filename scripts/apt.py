"""Debian packages the scripts install when they are missing (Java, Maven, podman, wrk, promtool).

The Python twin of the Makefile's ``apt_install``: as root, or through sudo when it needs no
password; otherwise an error that says which command to run, rather than a prompt in the middle
of a test run. No recommended extras, and the package lists are refreshed only when an install
fails without them (a fresh machine's lists are empty; a warm one's are usually enough).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


class AptError(RuntimeError):
    """A package could not be installed; the message says what to run by hand."""


def install(*packages: str, say: Callable[[str], None]) -> None:
    """Install ``packages`` with apt-get (AptError if that is impossible or fails)."""
    wanted = " ".join(packages)
    if shutil.which("apt-get") is None:
        raise AptError(f"{wanted} missing, and this machine has no apt-get: install it by hand")
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        raise AptError(f"{wanted} missing; install it with: sudo apt-get install -y {wanted}")
    say(f"installing Debian's {wanted}")
    command = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
               "--no-install-recommends", *packages]  # fmt: skip
    if subprocess.run(command).returncode == 0:
        return
    refreshed = subprocess.run([*sudo, "apt-get", "update", "-qq"]).returncode == 0
    if not refreshed or subprocess.run(command).returncode != 0:
        raise AptError(f"`apt-get install {wanted}` failed (its output is above)")


def binary(name: str, package: str, say: Callable[[str], None]) -> Path:
    """The path of the command ``name``, installing ``package`` first if it is not on PATH."""
    found = shutil.which(name)
    if found is None:
        install(package, say=say)
        found = shutil.which(name)
    if found is None:
        raise AptError(f"{package} installed no {name}")
    return Path(found)

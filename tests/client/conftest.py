"""Helpers for the client tests: run the installed ``digits`` console script, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.recognizer.config import Config
from services.recognizer.server import build
from tests.helpers import ServiceThread

DIGITS = Path(sys.executable).parent / "digits"


class Run:
    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.code, self.out, self.err = done.returncode, done.stdout, done.stderr

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture(scope="session")
def digits():
    """``digits(*args, env=...)``: the CLI that make installs into the venv, in a subprocess,
    with DIGITS_URL and DIGITS_TOKEN taken only from ``env`` (never from the caller's shell)."""
    assert DIGITS.exists(), "the digits CLI is not installed in the venv: run `make deps`"

    def run(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
        done = subprocess.run([str(DIGITS), *map(str, args)], env={**base, **(env or {})}, cwd=cwd,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        return Run(done)

    return run


@pytest.fixture(scope="session")
def recognizer():
    """A real recognizer (the service's own code, in a thread) on a free port: its address."""
    service = ServiceThread(build(Config(host="127.0.0.1", port=0, metrics_port=0))).start()
    service.wait_ready()
    yield service.address
    service.stop()

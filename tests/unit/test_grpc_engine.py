"""Each service's entry point chooses gRPC's I/O engine (digits/grpc_engine.py) before grpc loads.

Each case imports an entry point in a fresh interpreter, with warnings as errors: had grpc been
imported first, the module's warning would fail the import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "recognizer", "recorder")
# Not imported from digits.grpc_engine: this process has loaded grpc already, and it would warn.
EXPERIMENTS = "-event_engine_client,-event_engine_listener"


def _experiments_after_import(module: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    code = f"import {module}, os, sys; assert 'grpc' in sys.modules; print(os.environ.get('GRPC_EXPERIMENTS'))"
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("service", SERVICES)
def test_the_entry_point_sets_the_engine_before_grpc_loads(service):
    assert _experiments_after_import(f"services.{service}.__main__") == EXPERIMENTS


def test_an_operators_own_setting_wins():
    assert _experiments_after_import("services.recorder.__main__", GRPC_EXPERIMENTS="event_engine_dns") == "event_engine_dns"


def test_imported_after_grpc_it_warns_instead_of_pretending():
    code = "import grpc, digits.grpc_engine"
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"})  # fmt: skip
    assert done.returncode != 0
    assert "imported after grpc" in done.stderr

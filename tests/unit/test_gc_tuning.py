"""Each service freezes its start-up objects and collects the youngest generation less often
(digits/gc_tuning.py), once it is built and before it serves.

Each case runs in a fresh interpreter (gc settings are process-wide). The entry points run for
real up to the call that would serve, which is replaced by one that reports the collector's
state and returns: uvicorn.run for the gateway, uvloop.run for the gRPC services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from digits import gc_tuning

ROOT = Path(__file__).resolve().parents[2]

_REPORT = "import gc, json; print(json.dumps({'frozen': gc.get_freeze_count(), 'threshold': gc.get_threshold()}))"

_AT_SERVE = """
import gc, json, runpy, sys, uvicorn, uvloop
def report(target, *args, **kwargs):
    getattr(target, "close", lambda: None)()  # the coroutine uvloop.run would have run
    {report}
uvicorn.run = uvloop.run = report
runpy.run_module(sys.argv[1], run_name="__main__")
"""


def _run(code: str, *args: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_settle_freezes_what_is_alive_and_raises_only_the_youngest_threshold():
    before = _run(_REPORT)
    after = _run(f"from digits import gc_tuning; gc_tuning.settle(); {_REPORT}")
    assert before["frozen"] == 0 and after["frozen"] > 1000
    assert after["threshold"] == [gc_tuning.YOUNG, *before["threshold"][1:]]


@pytest.mark.parametrize("service", ["gateway", "recognizer", "recorder"])
def test_each_service_settles_before_it_serves(service):
    # Metrics ports 0: no listener, so the case runs beside anything else on this machine.
    env = {f"{service.upper()}_METRICS_PORT": "0"}
    state = _run(_AT_SERVE.format(report=_REPORT), f"services.{service}", **env)
    assert state["frozen"] > 1000
    assert state["threshold"][0] == gc_tuning.YOUNG

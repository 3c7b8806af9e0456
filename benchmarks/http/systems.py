"""The two systems under test, side by side on one Cassandra node, on free loopback ports.

The digits stack runs as ``make run`` runs it (scripts/devstack.py, default service settings),
but on a random loopback address, free ports and a temporary directory, so a ``make run`` or a
test session on the machine is never touched; and its Cassandra runs with the JVM's normal
tiered JIT rather than the C1-only quick start the tests use. The seed-style app
(seed_app.py) uses the same Cassandra node, with a keyspace of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scripts.devstack import Stack, StackConfig, free_port
from scripts.waiting import http_ok, wait_until
from tests.helpers import free_loopback_hosts, free_port_block

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "recognizer", "recorder")


@dataclass
class Systems:
    work_dir: Path
    stack: Stack
    seed: subprocess.Popen[bytes] | None = None
    seed_port: int = 0

    @property
    def digits_url(self) -> str:
        return self.stack.config.gateway_url

    @property
    def seed_url(self) -> str:
        return f"http://127.0.0.1:{self.seed_port}"

    def metrics_urls(self) -> dict[str, str]:
        c = self.stack.config
        return {
            "gateway": f"http://{c.bind}:{c.gateway_metrics_port}/metrics",
            "recognizer": f"http://{c.bind}:{c.recognizer_metrics_port}/metrics",
            "recorder": f"http://{c.bind}:{c.recorder_metrics_port}/metrics",
        }

    def grpc_addresses(self) -> dict[str, str]:
        c = self.stack.config
        return {"recognizer": f"{c.bind}:{c.recognizer_port}", "recorder": f"{c.bind}:{c.recorder_port}"}

    def roots(self) -> dict[str, int]:
        """The root pid of each process tree: the three services, Cassandra and the seed."""
        found = {
            name: self.stack.processes[name].popen.pid for name in SERVICES if name in self.stack.processes
        }
        cassandra = self.stack.cassandra.pid(0)
        if cassandra is not None:
            found["cassandra"] = cassandra
        if self.seed is not None:
            found["seed"] = self.seed.pid
        return found


def start(say=print) -> Systems:  # type: ignore[no-untyped-def]
    """Cassandra and the stack, then the seed. Stops whatever started if a later part fails."""
    work_dir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    config = StackConfig.on_free_ports(
        run_dir=work_dir / "stack",
        cassandra_hosts=(free_loopback_hosts(1)[0],),
        cassandra_jmx_port_base=free_port_block(1),
        keyspace="digits_bench",
        cassandra_fast_start=False,
    )
    systems = Systems(work_dir, Stack(config))
    try:
        say(
            f"starting Cassandra on {config.cassandra_hosts[0]} (full JIT) and the stack on {config.gateway_url}"
        )
        systems.stack.start()
        systems.seed_port = free_port()
        say(f"starting the seed-style app on {systems.seed_url}")
        log = open(work_dir / "seed.log", "wb")  # noqa: SIM115 - the child keeps it
        systems.seed = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.http.seed_app", "--port", str(systems.seed_port),
             "--cassandra", config.cassandra_hosts[0], "--upload-dir", str(work_dir / "seed-uploads")],
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        seed = systems.seed
        wait_until(http_ok(f"{systems.seed_url}/healthz"), 180, "the seed-style app",
                   lambda: None if seed.poll() is None else f"exited:\n{seed_log_tail(systems)}")  # fmt: skip
    except BaseException:
        stop(systems)
        raise
    return systems


def seed_log_tail(systems: Systems, lines: int = 30) -> str:
    try:
        text = (systems.work_dir / "seed.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop(systems: Systems) -> None:
    """Everything stopped and the temporary directory removed, whatever state it is in."""
    try:
        if systems.seed is not None and systems.seed.poll() is None:
            systems.seed.terminate()
            try:
                systems.seed.wait(20)
            except subprocess.TimeoutExpired:
                systems.seed.kill()
                systems.seed.wait()
    finally:
        try:
            systems.stack.stop()
        finally:
            shutil.rmtree(systems.work_dir, ignore_errors=True)

"""The gateway's channels spread calls over every address of a service: two real recognizer
processes behind one target both get calls. In Kubernetes the target is ``dns:///`` on a
headless Service; here it is gRPC's ``ipv4:`` list of the two addresses, which goes through the
same resolver-to-balancer path and the same ``round_robin`` policy."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import httpx

from digits.v1 import recognizer_pb2
from scripts.devstack import free_port
from scripts.waiting import grpc_serving, wait_until
from services.gateway.backends import Backends
from services.gateway.config import Config
from tests.helpers import DATA, ROOT

SEVEN = (DATA / "seven.png").read_bytes()
CALLS = 40


def _handled(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    found = re.search(r'digits_grpc_server_handled_total\{code="OK",method="/digits.v1.Recognizer/Recognize"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


async def _recognize_through_the_gateways_channel(target: str) -> None:
    backends = Backends(Config(recognizer_address=target))
    try:
        for _ in range(CALLS):
            await backends.recognizer.Recognize(recognizer_pb2.RecognizeRequest(image=SEVEN), timeout=30)
    finally:
        await backends.close()


def test_two_recognizers_behind_one_target_share_the_calls(tmp_path):
    ports = [(free_port(), free_port()) for _ in range(2)]
    processes = []
    try:
        for i, (grpc_port, metrics_port) in enumerate(ports):
            env = {**os.environ, "RECOGNIZER_HOST": "127.0.0.1", "RECOGNIZER_PORT": str(grpc_port),
                   "RECOGNIZER_METRICS_PORT": str(metrics_port), "RECOGNIZER_LOG_LEVEL": "warning"}  # fmt: skip
            log = open(tmp_path / f"recognizer{i}.log", "w")  # noqa: SIM115 - closed with the process
            processes.append((subprocess.Popen([sys.executable, "-m", "services.recognizer"], cwd=ROOT, env=env,
                                               stdout=log, stderr=subprocess.STDOUT), log))  # fmt: skip
        for (grpc_port, _), (process, _) in zip(ports, processes):
            with grpc_serving(f"127.0.0.1:{grpc_port}") as serving:
                wait_until(serving, 120, "a recognizer", lambda p=process: None if p.poll() is None else "exited")
        before = [_handled(metrics_port) for _, metrics_port in ports]
        target = "ipv4:" + ",".join(f"127.0.0.1:{grpc_port}" for grpc_port, _ in ports)
        asyncio.run(_recognize_through_the_gateways_channel(target))
        calls = [_handled(metrics_port) - earlier for (_, metrics_port), earlier in zip(ports, before)]
        print(f"calls per recognizer: {calls}")
        assert sum(calls) == CALLS
        # round_robin alternates per call; pick_first (gRPC's default) would send all to one.
        assert min(calls) >= CALLS // 4, calls
    finally:
        for process, log in processes:
            process.terminate()
            process.wait(30)
            log.close()

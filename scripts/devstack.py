"""Run the whole digits stack as local processes: Cassandra, recognizer, recorder, gateway.

``make run`` uses it in the foreground (Ctrl-C stops everything); the end-to-end tests use the
same code with their own ports and directories, so a test run and a ``make run`` left open
never touch each other.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.cassandra import CassandraCluster  # noqa: E402
from scripts.waiting import grpc_serving, http_ok, wait_until  # noqa: E402


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


CASSANDRA_CPUS_ENV = "DIGITS_CASSANDRA_CPUS"


def cassandra_cpus(setting: str | None = None) -> frozenset[int] | None:
    """The cores the stack's Cassandra runs on once it is up; None: wherever the kernel puts it.

    By default the last quarter of the cores this process may use (at least one), when there
    are two or more. Between requests Cassandra's request threads spin (parking 10 µs at a
    time until ~10 ms pass without work), and on a small machine they took turns with the
    services on every core: confined to one of two cores, an upload at concurrency 1 took
    ~0.7–1.1 ms less and the uploads/s at 64 were the same (docs/capacity.md). ``setting`` (by
    default $DIGITS_CASSANDRA_CPUS) may name the cores, as "1" or "2-3,6", or be "none"."""
    allowed = sorted(os.sched_getaffinity(0))
    setting = (os.environ.get(CASSANDRA_CPUS_ENV, "auto") if setting is None else setting).strip().lower()
    if setting == "none":
        return None
    if setting in ("", "auto"):
        return frozenset(allowed[-max(1, len(allowed) // 4) :]) if len(allowed) >= 2 else None
    cpus: set[int] = set()
    try:
        for part in setting.split(","):
            first, dash, last = part.partition("-")
            span = range(int(first), int(last if dash else first) + 1)
            if not span:
                raise ValueError(part)
            cpus.update(span)
    except ValueError:
        raise ValueError(f'{CASSANDRA_CPUS_ENV}={setting!r}: expected "auto", "none" or cores such as "1" or "2-3,6"') from None
    if not cpus or not cpus <= set(allowed):
        raise ValueError(f"{CASSANDRA_CPUS_ENV}={setting!r}: this process may use cores {allowed} only")
    return frozenset(cpus)


@dataclass
class StackConfig:
    run_dir: Path = ROOT / ".run"
    bind: str = "127.0.0.1"
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_jmx_port_base: int = 7199
    recognizer_port: int = 50051
    recorder_port: int = 50052
    gateway_port: int = 8080
    gateway_metrics_port: int = 9100
    recognizer_metrics_port: int = 9101
    recorder_metrics_port: int = 9102
    keyspace: str = "digits"
    # Extra environment for every service (e.g. to shorten deadlines in tests).
    env: dict[str, str] = field(default_factory=dict)
    echo_logs: bool = False
    # False when the caller runs Cassandra itself (the test suite shares one node).
    manage_cassandra: bool = True
    # C1-only JIT: a quicker start for tests and `make run`; `make bench` wants full speed.
    cassandra_fast_start: bool = True
    # The cores Cassandra runs on once up (None: any); only for a Cassandra the stack manages.
    cassandra_cpus: frozenset[int] | None = field(default_factory=cassandra_cpus)

    @classmethod
    def on_free_ports(cls, **settings: object) -> "StackConfig":
        """A stack whose six ports are free ones: beside `make run` and any other stack."""
        ports = {
            name: free_port()
            for name in ("recognizer_port", "recorder_port", "gateway_port", "gateway_metrics_port",
                         "recognizer_metrics_port", "recorder_metrics_port")
        }  # fmt: skip
        return cls(**ports, **settings)  # type: ignore[arg-type]

    @property
    def gateway_url(self) -> str:
        return f"http://{self.bind}:{self.gateway_port}"


class Process:
    """A service as a child process whose output goes to a log file (and the terminal if asked).

    Unechoed, the child writes to the file itself: a thread here copying each line (one per
    request from the gateway) would cost CPU that no service's figures show, under load.
    """

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path, echo: bool) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = log_path.open("a", encoding="utf-8")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE if echo else self._log,
            stderr=subprocess.STDOUT,
            text=True,
            # Own process group: Ctrl-C in the terminal reaches us, and we stop children in order.
            start_new_session=True,
        )
        self._pump: threading.Thread | None = None
        if echo:
            self._pump = threading.Thread(target=self._copy_output, daemon=True)
            self._pump.start()

    def _copy_output(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._log.write(line)
            self._log.flush()
            sys.stdout.write(f"{self.name:>10} | {line}")
            sys.stdout.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        self._log.close()
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""


def _exited(process: Process) -> Callable[[], str | None]:
    return lambda: None if process.alive() else f"exited during start-up:\n{process.tail()}"


def admin_token(path: Path) -> str:
    """The stack's admin token: made on first start, then kept in ``path`` (mode 600) so that
    scripts and people keep using the same one across restarts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created with mode 600 from the start: never readable by others, even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)
    return path.read_text().strip()


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.admin_token_file = config.run_dir / "admin-token"
        self.admin_token = admin_token(self.admin_token_file)
        self.cassandra = CassandraCluster(
            base_dir=config.run_dir / "cassandra",
            hosts=list(config.cassandra_hosts),
            jmx_port_base=config.cassandra_jmx_port_base,
            fast_start=config.cassandra_fast_start,
        )
        self.processes: dict[str, Process] = {}

    def service_env(self) -> dict[str, str]:
        c = self.config
        return {
            "PYTHONUNBUFFERED": "1",
            "RECOGNIZER_HOST": c.bind,
            "RECOGNIZER_PORT": str(c.recognizer_port),
            "RECOGNIZER_METRICS_PORT": str(c.recognizer_metrics_port),
            "RECORDER_HOST": c.bind,
            "RECORDER_PORT": str(c.recorder_port),
            "RECORDER_METRICS_PORT": str(c.recorder_metrics_port),
            "RECORDER_CASSANDRA_HOSTS": ",".join(c.cassandra_hosts),
            "RECORDER_KEYSPACE": c.keyspace,
            "RECORDER_REPLICATION_FACTOR": str(min(3, len(c.cassandra_hosts))),
            "RECORDER_ADMIN_TOKEN": self.admin_token,
            "GATEWAY_HOST": c.bind,
            "GATEWAY_PORT": str(c.gateway_port),
            "GATEWAY_METRICS_PORT": str(c.gateway_metrics_port),
            "GATEWAY_RECOGNIZER_ADDRESS": f"{c.bind}:{c.recognizer_port}",
            "GATEWAY_RECORDER_ADDRESS": f"{c.bind}:{c.recorder_port}",
            **c.env,
        }

    def start_service(self, name: str) -> Process:
        process = Process(
            name,
            [sys.executable, "-m", f"services.{name}"],
            self.service_env(),
            self.config.run_dir / "logs" / f"{name}.log",
            self.config.echo_logs,
        )
        self.processes[name] = process
        return process

    def wait_service(self, name: str, timeout: float = 120) -> None:
        c = self.config
        process = self.processes[name]
        if name == "gateway":
            wait_until(http_ok(f"{c.gateway_url}/readyz"), timeout, name, _exited(process))
        else:
            port = c.recognizer_port if name == "recognizer" else c.recorder_port
            with grpc_serving(f"{c.bind}:{port}") as serving:
                wait_until(serving, timeout, name, _exited(process))

    def start(self) -> None:
        if self.config.manage_cassandra:
            self.cassandra.start(wait=True)  # installs the jars first if they are missing
            if self.config.cassandra_cpus:
                self.cassandra.confine(self.config.cassandra_cpus)
        # The recognizer loads TensorFlow while Cassandra settles and the recorder connects.
        for name in ("recognizer", "recorder"):
            self.start_service(name)
        for name in ("recognizer", "recorder"):
            self.wait_service(name)
        self.start_service("gateway")
        self.wait_service("gateway")

    def stop(self) -> None:
        # The gateway first, so no request arrives at a service that is already gone.
        for name in ("gateway", "recorder", "recognizer"):
            if name in self.processes:
                self.processes.pop(name).stop()
        if self.config.manage_cassandra:
            self.cassandra.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="don't echo service logs to the terminal")
    args = parser.parse_args()
    config = StackConfig(echo_logs=not args.quiet)
    stack = Stack(config)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # Ctrl-C must work even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        started = time.monotonic()
        stack.start()
        print(
            f"""
digits is up ({time.monotonic() - started:.0f} s):
  web page and HTTP API   {config.gateway_url}/    (OpenAPI docs: {config.gateway_url}/docs)
                          metrics http://{config.bind}:{config.gateway_metrics_port}/metrics
  recognizer gRPC         {config.bind}:{config.recognizer_port}   metrics http://{config.bind}:{config.recognizer_metrics_port}/metrics
  recorder gRPC           {config.bind}:{config.recorder_port}   metrics http://{config.bind}:{config.recorder_metrics_port}/metrics
  Cassandra CQL           {config.cassandra_hosts[0]}:9042
  logs                    {config.run_dir / 'logs'}
  admin token             {stack.admin_token_file}  (mode 600; send it as `Authorization: Bearer ...`)
Try:  curl -F image=@tests/data/seven.png {config.gateway_url}/v1/recognitions
      curl -H "Authorization: Bearer $(cat {os.path.relpath(stack.admin_token_file)})" {config.gateway_url}/v1/recognitions
Press Ctrl-C to stop everything.
""",
            flush=True,
        )
        while not stopping.is_set():
            for process in stack.processes.values():
                if not process.alive():
                    print(f"{process.name} exited unexpectedly:\n{process.tail()}", file=sys.stderr)
                    return 1
            stopping.wait(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping…", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

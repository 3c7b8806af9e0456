"""Waiting until something is up: one loop for the dev stack, the tests and the benchmarks.

``wait_until(check, timeout, what)`` polls ``check`` until it returns true, and fails early,
with the reason, when ``gone`` says the thing being waited for has died (a process that exited
during start-up never becomes ready, so waiting out the timeout would only hide why).
``grpc_serving`` and ``http_ok`` are the two checks every digits service answers.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    gone: Callable[[], str | None] = lambda: None,
    interval: float = 0.25,
) -> None:
    """Return once ``check()`` is true; TimeoutError after ``timeout`` s, RuntimeError as soon
    as ``gone()`` returns a reason. Exceptions from ``check`` count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        reason = gone()
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet, whatever the way it says so
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


@contextmanager
def grpc_serving(address: str, service: str = "") -> Iterator[Callable[[], bool]]:
    """A check that the gRPC health service at ``address`` reports SERVING (one channel)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def check() -> bool:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        yield check


def http_ok(url: str, headers: dict[str, str] | None = None, context: object = None) -> Callable[[], bool]:
    """A check that GET ``url`` answers 200."""

    def check() -> bool:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as reply:  # type: ignore[arg-type]
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check

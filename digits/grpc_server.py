"""The lifecycle every digits gRPC service shares.

A service supplies its servicer and a ``startup`` coroutine (load the model, connect to
Cassandra, ...). This module adds the standard ``grpc.health.v1`` service, which reports
NOT_SERVING until ``startup`` has finished so that Kubernetes sends no traffic too early;
a ``liveness`` health entry that is SERVING while the process runs (the liveness probe must not
kill a pod that is only waiting for a dependency); server reflection, so ``grpcurl`` works
without the .proto files; per-method Prometheus
metrics; and a graceful stop on SIGTERM: report NOT_SERVING, stop accepting calls, let those
in flight finish within a grace period, then exit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

# The health "service" a liveness probe asks for: SERVING from start to exit, so that a pod
# waiting for Cassandra or loading its model is not ready but is not restarted either.
LIVENESS = "liveness"

RPC_SECONDS = Histogram(
    "digits_grpc_server_handling_seconds",
    "Time to handle a unary RPC, by method and status code.",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPCS = Counter(
    "digits_grpc_server_handled_total", "Unary RPCs handled, by method and status code.", ["method", "code"]
)


# Probes must be answered however busy the service is: a refused probe restarts a busy pod.
_NEVER_REFUSED = ("/grpc.health.v1.", "/grpc.reflection.")


async def _refuse(request, context):  # type: ignore[no-untyped-def]
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many calls in flight; retry shortly")


IN_FLIGHT = Gauge("digits_grpc_server_in_flight", "Unary RPCs being handled right now.")


class _MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary-unary RPC by its final status code, and keeps what a
    graceful stop reports: the calls in flight when it began and how each of them ended."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.in_flight = 0
        self.draining = False
        self.drained: collections.Counter[str] = collections.Counter()  # final code -> calls
        # The wrapped handler of each method, made on its first call: building a handler per
        # call cost a measurable share of a small RPC.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        refusable = bool(self.limit) and not method.startswith(_NEVER_REFUSED)
        # The labelled children, per code, made when a code first occurs (only codes seen are exported).
        children: dict[grpc.StatusCode, tuple[Any, Any]] = {}

        async def observed(request, context):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            call = _refuse if refusable and self.in_flight >= self.limit else inner
            self.in_flight += 1
            IN_FLIGHT.inc()
            try:
                return await call(request, context)
            except BaseException:
                # context.abort() records its code before raising; anything else is a bug.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if not isinstance(code, grpc.StatusCode):  # a raw integer from an odd path
                    code = grpc.StatusCode.UNKNOWN
                timer, counter = children.get(code) or children.setdefault(
                    code, (RPC_SECONDS.labels(method, code.name), RPCS.labels(method, code.name))
                )
                timer.observe(time.perf_counter() - start)
                counter.inc()
                self.in_flight -= 1
                IN_FLIGHT.dec()
                if self.draining:
                    self.drained[code.name] += 1

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass
class GrpcService:
    """One gRPC server with health, reflection and metrics, and the hooks of one service.

    ``register`` adds the service's servicer to the server; ``service_names`` are the
    fully-qualified names (for health and reflection); ``startup`` runs after the port is
    open and must return once the service can answer; ``shutdown`` releases resources after
    the last in-flight call.
    """

    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    startup: Callable[[], Awaitable[None]]
    shutdown: Callable[[], Awaitable[None]]
    host: str = "0.0.0.0"
    port: int = 0
    grace_seconds: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    # Calls handled at once; past it gRPC answers RESOURCE_EXHAUSTED at once instead of queueing
    # work that would only finish after its caller gave up. 0: no bound.
    max_concurrent_rpcs: int = 0
    health: health.aio.HealthServicer = field(default_factory=health.aio.HealthServicer)
    server: grpc.aio.Server | None = None
    bound_port: int = 0
    _ready: asyncio.Task[None] | None = None
    _calls: _MetricsInterceptor | None = None

    async def start(self) -> int:
        """Open the port and begin ``startup`` in the background; return the bound port."""
        options = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            # Accept the gateway's keepalive pings (every 20 s during calls) without answering
            # "too many pings" (the default minimum is 5 minutes).
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ]
        # The bound is the interceptor's, not gRPC's maximum_concurrent_rpcs, which would refuse
        # health checks too.
        self._calls = _MetricsInterceptor(self.max_concurrent_rpcs)
        self.server = grpc.aio.server(interceptors=[self._calls], options=options)
        self.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        self.bound_port = self.server.add_insecure_port(f"{self.host}:{self.port}")
        await self.server.start()
        log.info("grpc listening", extra={"address": f"{self.host}:{self.bound_port}"})
        self._ready = asyncio.create_task(self._start_up())
        return self.bound_port

    async def _start_up(self) -> None:
        try:
            await self.startup()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Stay up but NOT_SERVING: the probe and the log say why, and an orchestrator
            # restarts us rather than us exiting in a crash loop with no trace.
            log.exception("startup failed; health stays NOT_SERVING")
            return
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"services": list(self.service_names)})

    async def wait_ready(self) -> None:
        if self._ready is not None:
            await self._ready

    async def _set_health(self, status: int) -> None:
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self) -> None:
        """Drain: NOT_SERVING first so load balancers move away, then finish in-flight calls."""
        if self.server is None:
            return
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        assert self._calls is not None  # made with the server
        self._calls.draining = True
        log.info("stopping", extra={"grace_seconds": self.grace_seconds, "in_flight": self._calls.in_flight})
        await self.server.stop(self.grace_seconds)
        await self.shutdown()
        self.server = None
        # How the calls that were in flight ended: all OK (or their own errors) means none was cut off.
        log.info("stopped", extra={"drained": dict(self._calls.drained)})

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop()


def main(name: str, config: Any, build: Callable[[Any], GrpcService], secrets: Sequence[str] = ()) -> None:
    """The entry point of a gRPC service: JSON logs, /metrics, serve until SIGTERM.

    ``config`` is the service's settings object; it must have ``log_level``, ``host`` and
    ``metrics_port``. ``secrets`` names its fields to mask in the start-up log line.
    """
    from digits import gc_tuning, logs
    from digits.config import describe
    from digits.metrics import serve_metrics

    logs.setup(name, config.log_level)
    log.info("starting", extra={"config": describe(config, tuple(secrets))})
    serve_metrics(config.host, config.metrics_port)
    service = build(config)
    gc_tuning.settle()
    # uvloop: its thread-safe wake-ups, which gRPC's poller and the Cassandra driver use on
    # every call, cost less than asyncio's (~0.2 ms less an upload at low load, end to end).
    uvloop.run(service.run_until_signalled())

"""gRPC clients for the recognizer and the recorder, and how their errors become problems."""

from __future__ import annotations

import json
import logging
import time

import grpc
from prometheus_client import Counter, Histogram

from digits import errors
from digits.v1 import recognizer_pb2_grpc, recorder_pb2_grpc
from services.gateway.config import Config
from services.gateway.problems import Problem

log = logging.getLogger(__name__)


# Reasons the services give (google.rpc.ErrorInfo, see digits/errors.py) that are the client's
# to fix, and the problem type each becomes. Anything else is ours: 503 if worth a retry, else 502.
_CLIENT_REASONS = {
    "NOT_AN_IMAGE": "not-an-image",
    "IMAGE_TOO_LARGE": "image-too-large",
    "EMPTY_IMAGE": "empty-image",
    "CORRUPT_IMAGE": "corrupt-image",
    "NO_DIGIT_FOUND": "no-digit-found",
    "NOT_A_DIGIT": "not-a-digit",
    "TOO_MANY_DIGITS": "too-many-digits",
    "RECOGNITION_NOT_FOUND": "recognition-not-found",
    "IMAGE_EXPIRED": "image-expired",
    "TOKEN_REQUIRED": "authentication-required",
    "TOKEN_INVALID": "invalid-token",
    "FORBIDDEN": "forbidden",
    "TOKEN_NOT_FOUND": "token-not-found",
    "INVALID_USER": "invalid-user",
    "INVALID_PAGE_TOKEN": "invalid-page-token",
    "INVALID_QUERY": "invalid-request",
    "IDEMPOTENCY_KEY_REUSED": "idempotency-key-reused",
    "INVALID_LABEL": "invalid-label",
}
# Worth a retry: the dependency is down, slow or full. CANCELLED too: the gateway never
# cancels a call itself, so it comes from a server that is stopping and turned away a call it
# had received but not started (seen in the fault suite's SIGTERM case).
_RETRYABLE = (
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
)  # fmt: skip

UPSTREAM_ERRORS = Counter(
    "digits_gateway_upstream_errors_total", "Failed calls to a dependency, by dependency and gRPC code.",
    ["dependency", "code"],
)  # fmt: skip

BACKEND_SECONDS = Histogram(
    "digits_gateway_backend_seconds",
    "Time of one call to a dependency as the gateway sees it (the service's own handling time "
    "plus gRPC and network), by dependency and method.",
    ["dependency", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


async def call(
    dependency: str,
    rpc,  # type: ignore[no-untyped-def]
    request,  # type: ignore[no-untyped-def]
    timeout: float,
    metadata: tuple[tuple[str, str], ...] = (),
    trailers: dict[str, str] | None = None,
    passthrough: tuple[grpc.StatusCode, ...] = (),
):
    """One call; its failure as a Problem. ``trailers``, if given, receives the call's trailers;
    a failure with a code in ``passthrough`` is raised as it is, for the caller to handle."""
    start = time.perf_counter()
    try:
        pending = rpc(request, timeout=timeout, metadata=metadata or None)
        reply = await pending
        if trailers is not None:
            trailers.update(await pending.trailing_metadata() or ())
        return reply
    except grpc.aio.AioRpcError as exc:
        UPSTREAM_ERRORS.labels(dependency, exc.code().name).inc()
        if exc.code() in passthrough:
            raise
        raise to_problem(exc, dependency) from None
    finally:
        # Each method has a request message of its own, named after it.
        method = type(request).__name__.removesuffix("Request")
        BACKEND_SECONDS.labels(dependency, method).observe(time.perf_counter() - start)


def to_problem(exc: grpc.aio.AioRpcError, dependency: str) -> Problem:
    """The problem a failed call becomes. A service's own message is shown only for reasons
    that are the client's to fix (it describes their input); for the rest the client learns
    which dependency failed, never its internals, which go to the log."""
    code, reason = exc.code(), errors.reason_of(exc)
    if reason in _CLIENT_REASONS:
        return client_problem(reason, exc.details() or reason, dependency)
    log.warning(
        "dependency call failed",
        extra={"dependency": dependency, "code": code.name, "reason": reason, "details": exc.details()},
    )
    if code in _RETRYABLE:
        return Problem("dependency-unavailable", f"the {dependency} is unavailable; retry shortly", retry_after=1)
    return Problem("dependency-failed", f"the {dependency} could not answer ({code.name}{': ' + reason if reason else ''})")


def client_problem(reason: str, message: str, dependency: str) -> Problem:
    """The problem for a failure a service says is in the client's input (an ``ImageError`` of
    RecognizeBatch, or the ErrorInfo of a failed call)."""
    if reason in _CLIENT_REASONS:
        return Problem(_CLIENT_REASONS[reason], message or reason)
    log.warning("unknown failure reason", extra={"dependency": dependency, "reason": reason, "details": message})
    return Problem("dependency-failed", f"the {dependency} could not answer ({reason})")


def _service_config(retry_service: str | None = None) -> str:
    """A channel's service config: round_robin over every address the target resolves to.

    With a ``dns:///`` target naming a headless Service, each call goes to the next pod, where
    the default pick_first would send every call of this gateway to one pod.
    """
    config: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if retry_service:
        # Record is idempotent (the recorder derives the record id from request_id and
        # received_at), so gRPC may retry it, and the reads, when the recorder or Cassandra is
        # briefly unavailable: a recorder pod restarting, or a Cassandra node the recorder has
        # not yet noticed is down. The call's deadline bounds all attempts together.
        config["methodConfig"] = [
            {
                # Record(Batch), the reads and labelling (the same label again; only a first label is
                # counted): a retried delete that had landed would answer 404, and a retried
                # CreateToken would leave a live token nobody ever saw.
                "name": [{"service": retry_service, "method": m}
                         for m in ("Record", "RecordBatch", "GetRecognition", "ListRecognitions", "GetImage", "GetStats",
                                   "LabelRecognition")],  # fmt: skip
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


class Backends:
    """One long-lived channel per dependency, shared by all requests (channels multiplex)."""

    def __init__(self, config: Config) -> None:
        options = [
            ("grpc.max_send_message_length", config.max_upload_bytes + 64 * 1024),
            ("grpc.max_receive_message_length", config.max_upload_bytes + 64 * 1024),
            # Reconnect within seconds once a restarted dependency is back (the default
            # backoff grows to two minutes). Calls made while it is down fail at once with
            # UNAVAILABLE, since they are not wait_for_ready.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
            # Find dead connections (a pod gone without a FIN) within seconds, not at the next
            # call's deadline; 20 s stays above the server's default minimum ping interval.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            # Re-resolve DNS soon after a pod is added or removed.
            ("grpc.dns_min_time_between_resolutions_ms", 5_000),
        ]
        self._channels = {
            "recognizer": grpc.aio.insecure_channel(
                config.recognizer_address, options=[*options, ("grpc.service_config", _service_config())]
            ),
            "recorder": grpc.aio.insecure_channel(
                config.recorder_address,
                options=[*options, ("grpc.service_config", _service_config("digits.v1.Recorder"))],
            ),
        }
        self.recognizer = recognizer_pb2_grpc.RecognizerStub(self._channels["recognizer"])
        self.recorder = recorder_pb2_grpc.RecorderStub(self._channels["recorder"])

    def states(self) -> dict[str, str]:
        """Each dependency's channel state (READY, IDLE, CONNECTING, TRANSIENT_FAILURE, ...)."""
        return {name: channel.get_state().name for name, channel in self._channels.items()}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

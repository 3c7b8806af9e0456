"""gRPC clients for the recognizer and the recorder, and how their errors reach HTTP."""

from __future__ import annotations

import json

import grpc

from digits.v1 import recognizer_pb2_grpc, recorder_pb2_grpc
from services.gateway.config import Config


class ApiError(Exception):
    """An error answer: HTTP status, a stable reason code and a message for people."""

    def __init__(self, status: int, reason: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


# Reasons the recognizer gives for a bad image (its message starts with one), and their HTTP status.
_IMAGE_STATUS = {
    "NOT_AN_IMAGE": 415,
    "IMAGE_TOO_LARGE": 413,
    "EMPTY_IMAGE": 422,
    "CORRUPT_IMAGE": 422,
    "NO_DIGIT_FOUND": 422,
}


def to_api_error(exc: grpc.aio.AioRpcError, dependency: str) -> ApiError:
    code, details = exc.code(), exc.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return ApiError(
            503, "DEPENDENCY_UNAVAILABLE", f"the {dependency} is unavailable ({code.name}): {details}", retry_after=1
        )
    if code == grpc.StatusCode.NOT_FOUND:
        return ApiError(404, "NOT_FOUND", details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        reason, _, message = details.partition(": ")
        if reason in _IMAGE_STATUS:
            return ApiError(_IMAGE_STATUS[reason], reason, message)
        return ApiError(400, "INVALID_ARGUMENT", details)
    return ApiError(502, "DEPENDENCY_ERROR", f"the {dependency} failed ({code.name}): {details}")


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
                "name": [{"service": retry_service}],
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

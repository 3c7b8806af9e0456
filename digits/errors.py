"""Why a gRPC call failed, as data: ``google.rpc.ErrorInfo`` in the status details.

A server aborts with a status code, a message for people, and an ErrorInfo whose ``reason`` is
a stable UPPER_SNAKE code (``NOT_AN_IMAGE``, ``CASSANDRA_UNAVAILABLE``, ...) in the ``digits.v1``
domain; it travels in the standard ``grpc-status-details-bin`` trailer, so a client in any
language reads it with its gRPC library's rich-error support. Clients here read it with
``reason_of``, never by parsing the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "digits.v1"
_DETAILS_KEY = "grpc-status-details-bin"


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    metadata: Mapping[str, str] | None = None,
) -> NoReturn:
    """End the call with ``code`` and ``message``, and ErrorInfo(``reason``) in its details."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata or {})))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    await context.abort(code, message, trailing_metadata=((_DETAILS_KEY, status.SerializeToString()),))
    raise AssertionError("unreachable: abort raises")


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo a digits service attached to a failed call, if any."""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == _DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info) and info.domain == DOMAIN:
                    return info
    return None


def reason_of(error: grpc.RpcError) -> str:
    """The failure's stable reason, or "" when the call carried none (e.g. a transport error)."""
    info = error_info(error)
    return info.reason if info else ""

"""Why a call failed, the same way for HTTP and gRPC.

The gateway answers every error as an RFC 9457 problem (``type``, ``title``, ``detail``,
``status``, ``request_id``); a gRPC service aborts with a status code and a
``google.rpc.ErrorInfo`` reason (``NOT_AN_IMAGE``). Both become a ``ProblemError`` whose
``slug`` is the problem type's last segment (``not-an-image``); gRPC reasons map to the same
spelling, so a program branches on ``slug`` whichever transport it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DigitsError(Exception):
    """Every error this client raises."""


class UnreachableError(DigitsError):
    """No answer: the address refused the connection, or the call timed out."""


class ProblemError(DigitsError):
    def __init__(
        self,
        *,
        slug: str,
        title: str,
        detail: str,
        status: int | None = None,
        grpc_code: str | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{title}: {detail}" if detail else title)
        self.slug = slug
        self.title = title
        self.detail = detail
        self.status = status
        self.grpc_code = grpc_code
        self.request_id = request_id
        self.body: Mapping[str, Any] = body or {}
        # Seconds the server asked to wait before retrying (every 503 of the gateway has it).
        self.retry_after = retry_after

    @property
    def is_auth(self) -> bool:
        """A missing, invalid or insufficient token."""
        return self.status in (401, 403) or self.grpc_code in ("UNAUTHENTICATED", "PERMISSION_DENIED")

    @property
    def is_unsupported(self) -> bool:
        """The server has no such endpoint (an older gateway): not this request's fault."""
        return self.slug in ("not-found", "method-not-allowed") or self.grpc_code == "UNIMPLEMENTED"

    @property
    def is_server_side(self) -> bool:
        """The server or something behind it failed or is overloaded; the request may be fine."""
        if self.status is not None:
            return self.status >= 500
        return self.grpc_code in (
            "UNAVAILABLE",
            "INTERNAL",
            "UNKNOWN",
            "DEADLINE_EXCEEDED",
            "RESOURCE_EXHAUSTED",
            "DATA_LOSS",
        )

    @classmethod
    def from_http(cls, status: int, headers: Mapping[str, str], text: str, body: Any) -> ProblemError:
        retry_after = headers.get("retry-after")
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        if isinstance(body, Mapping) and "type" in body and "title" in body:
            kind = str(body["type"])
            return cls(
                slug=kind.rstrip("/").rsplit("/", 1)[-1],
                title=str(body["title"]),
                detail=str(body.get("detail") or ""),
                status=status,
                request_id=body.get("request_id"),
                body=body,
                retry_after=wait,
            )
        # Not a problem document: a proxy's HTML error page, or some other server.
        snippet = " ".join(text.split())[:200]
        content_type = headers.get("content-type") or "no content type"
        return cls(
            slug="",
            title=f"HTTP {status}",
            detail=f"{content_type}: {snippet}",
            status=status,
            retry_after=wait,
        )

    @classmethod
    def from_grpc_reason(cls, code: str, reason: str, message: str) -> ProblemError:
        return cls(slug=reason.lower().replace("_", "-"), title=code, detail=message, grpc_code=code)

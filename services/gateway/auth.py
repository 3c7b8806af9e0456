"""Bearer tokens at the HTTP edge: read the header, hand it to the recorder, document it.

The gateway decides nothing about access: the recorder, which owns the records and the
tokens, checks every call (see services/recorder/access.py). The gateway only refuses what
cannot be a bearer token, and passes the rest on as gRPC ``authorization`` metadata.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from services.gateway.problems import Problem

MAX_TOKEN_CHARS = 256

# Only for the OpenAPI document (the padlock in /docs); the header is parsed below, because
# FastAPI's parser treats a malformed header like a missing one.
SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A user token (issued by an admin with `POST /v1/tokens`) or the admin token.",
)


def credentials(request: Request) -> tuple[tuple[str, str], ...]:
    """The call's gRPC metadata: the bearer token, or nothing for an anonymous request."""
    header = request.headers.get("authorization")
    if header is None:
        return ()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if (
        scheme.lower() != "bearer"
        or not 0 < len(token) <= MAX_TOKEN_CHARS
        or not (token.isascii() and token.isprintable())
    ):
        raise Problem("invalid-token", "the Authorization header must be `Bearer <token>`")
    return (("authorization", f"Bearer {token}"),)


async def _required(request: Request, _: object = Depends(SCHEME)) -> None:
    """Refuse at once, before the body is even read, what cannot be authorised."""
    if not credentials(request):
        raise Problem("authentication-required", "send `Authorization: Bearer <token>`")


# REQUIRED, a route dependency, for everything but uploads. Uploads may carry a token: their
# OpenAPI operation says so itself (`bearer`, or `{}`: anonymous is fine) rather than through a
# dependency, which would parse the header a second time on every upload.
REQUIRED = Depends(_required)
OPTIONAL_SECURITY = {"security": [{"bearer": []}, {}]}

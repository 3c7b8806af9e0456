"""/v1/tokens: the admin issues and revokes user tokens."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from digits.v1 import recorder_pb2
from services.gateway import auth, problems
from services.gateway.backends import call
from services.gateway.config import Config
from services.gateway.requests import MAX_USER

_TOKEN_ID = r"^[0-9a-f]{64}$"


class NewToken(BaseModel):
    user: str = Field(
        min_length=1, max_length=MAX_USER, description="Whose token: what it records under and may read."
    )


class Token(BaseModel):
    token: str = Field(description="The secret. Shown this once: the service keeps only its SHA-256.")
    id: str = Field(description="The token's SHA-256 in hex: what `DELETE /v1/tokens/{id}` takes.")
    user: str
    created_at: datetime

    @classmethod
    def from_proto(cls, token: recorder_pb2.Token) -> "Token":
        return cls(
            token=token.token,
            id=token.id,
            user=token.user,
            created_at=token.created_at.ToDatetime(tzinfo=timezone.utc),
        )


def router(config: Config) -> APIRouter:
    routes = APIRouter(prefix="/v1/tokens", tags=["tokens"], dependencies=[auth.REQUIRED])

    @routes.post(
        "",
        status_code=201,
        response_model=Token,
        responses=problems.responses(400, 401, 403, 502, 503),
        summary="Issue a bearer token for a user (admin token only)",
    )
    async def create_token(body: NewToken, request: Request) -> Token:
        if not body.user.isprintable():
            raise problems.Problem(
                "invalid-user", f"`user` must be printable text of 1 to {MAX_USER} characters"
            )
        issued = await call(
            "recorder",
            request.app.state.backends.recorder.CreateToken,
            recorder_pb2.CreateTokenRequest(user=body.user),
            config.record_timeout_seconds,
            auth.credentials(request),
        )
        return Token.from_proto(issued)

    @routes.delete(
        "/{token_id}",
        status_code=204,
        response_class=Response,
        responses=problems.responses(400, 401, 403, 404, 502, 503),
        summary="Revoke a token (admin token only); replicas forget it within 30 seconds",
    )
    async def revoke_token(
        request: Request, token_id: str = Path(pattern=_TOKEN_ID, description="The token's `id`.")
    ) -> Response:
        await call(
            "recorder",
            request.app.state.backends.recorder.RevokeToken,
            recorder_pb2.RevokeTokenRequest(id=token_id),
            config.record_timeout_seconds,
            auth.credentials(request),
        )
        return Response(status_code=204)

    return routes

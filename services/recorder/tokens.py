"""The admin's RPCs for user tokens: CreateToken and RevokeToken."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import grpc
from google.protobuf.empty_pb2 import Empty

from digits.v1 import recorder_pb2
from services.recorder import failures
from services.recorder.access import new_token, token_hash
from services.recorder.base import RecorderBase
from services.recorder.ids import to_millis
from services.recorder.records import timestamp
from services.recorder.requests import invalid_user

log = logging.getLogger(__name__)


class TokenRPCs(RecorderBase):
    async def CreateToken(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        await self._require_admin(context, "create_token", "issuing tokens (an admin's)")
        if problem := invalid_user(request.user):
            await self._fail(
                context,
                "create_token",
                "invalid_argument",
                grpc.StatusCode.INVALID_ARGUMENT,
                problem,
                "INVALID_USER",
            )
        token, created_at = new_token(), to_millis(datetime.now(timezone.utc))
        digest = token_hash(token)
        try:
            await store.add_token(digest, request.user, created_at, self._deadline(context))
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "create_token", exc, store.write_consistency)
        log.info("token issued", extra={"user": request.user, "token_id": digest.hex()[:12]})
        return recorder_pb2.Token(token=token, id=digest.hex(), user=request.user, created_at=timestamp(created_at))

    async def RevokeToken(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        await self._require_admin(context, "revoke_token", "revoking tokens (an admin's)")
        try:
            digest = bytes.fromhex(request.id)
            if len(digest) != 32:
                raise ValueError
        except ValueError:
            await self._fail(context, "revoke_token", "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                             "id must be a token id: 64 hexadecimal digits", "INVALID_TOKEN_ID")  # fmt: skip
        try:
            if await store.token_user(digest, self._deadline(context)) is None:
                await self._fail(context, "revoke_token", "not_found", grpc.StatusCode.NOT_FOUND,
                                 f"no token has id {request.id}", "TOKEN_NOT_FOUND")  # fmt: skip
            await store.remove_token(digest, self._deadline(context))
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "revoke_token", exc, store.write_consistency)
        self._auth.forget(digest)
        log.info("token revoked", extra={"token_id": request.id[:12]})
        return Empty()

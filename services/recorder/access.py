"""Who is calling, and what they may see: bearer tokens and per-record authorization.

The model (the README's "Access control" says it for users):

- A call carries ``authorization: Bearer <token>`` metadata, or nothing (anonymous).
- The admin token comes from the recorder's configuration (a Kubernetes Secret; ``make run``
  keeps it in ``.run/admin-token``). It may do everything.
- User tokens are issued by an admin (CreateToken). Cassandra keeps only their SHA-256: the
  tokens are 256 random bits, so a fast hash is enough (nothing to brute-force, unlike a
  password) and a stolen table holds nothing that logs anyone in.
- A record belongs to the user it was recorded under. Its owner's token or an admin token
  may read and delete it; anyone else is told it does not exist (NOT_FOUND), so ids reveal
  nothing. Anonymous records belong to no one: only an admin can read them back.

Looking a token up costs a Cassandra read, so answers are cached for ``cache_seconds``: that is
also how long a revoked token keeps working on a replica that has seen it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

TOKEN_PREFIX = "dgt_"  # makes leaked tokens easy to find with secret scanners
MAX_TOKEN_CHARS = 256
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Principal:
    """Who a token stands for: a user, or an admin (``user`` is then "")."""

    user: str
    admin: bool = False

    def may_read(self, owner: str) -> bool:
        """Whether this caller may see (and delete) a record of ``owner`` ("" for anonymous)."""
        return self.admin or (bool(owner) and owner == self.user)


class InvalidToken(Exception):
    """The call carries a token that is malformed, unknown or revoked."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry; None without one.

    Raises InvalidToken for an authorization entry that is not a well-formed bearer token.
    """
    for key, value in metadata or ():
        if key != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
            raise InvalidToken("the authorization is not `Bearer <token>`")
        return token
    return None


class Authenticator:
    """Resolves tokens to principals: the configured admin token, else a lookup by hash."""

    def __init__(
        self,
        admin_token: str,
        lookup: Callable[[bytes], Awaitable[str | None]],
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin_hash = token_hash(admin_token) if admin_token else None
        self._lookup = lookup
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        # Revoked here: refused even if a lookup that began before the revocation answers after.
        self._revoked: set[bytes] = set()

    async def principal(self, token: str | None) -> Principal | None:
        """The caller behind ``token`` (None: anonymous); InvalidToken if it names no one."""
        if token is None:
            return None
        digest = token_hash(token)
        # Compared as hashes, in constant time: how much of the admin token a guess got right
        # must not show in how long the answer takes.
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(user="", admin=True)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = await self._lookup(digest)  # may raise the store's errors: the caller's to map
        if user is None or digest in self._revoked:
            raise InvalidToken("the token is unknown or was revoked")
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()  # bounded memory; the next calls simply look up again
        principal = Principal(user=user)
        self._cache[digest] = (now + self._cache_seconds, principal)
        return principal

    def forget(self, digest: bytes) -> None:
        """Refuse a revoked token on this replica from now on."""
        self._cache.pop(digest, None)
        if len(self._revoked) >= _CACHE_LIMIT:
            self._revoked.clear()  # bounded; the table no longer has them anyway
        self._revoked.add(digest)

"""Token parsing and resolution in the recorder. The token table is a small in-memory fake (a
dict behind an async function); the real table is exercised in tests/integration."""

from __future__ import annotations

import asyncio

import pytest

from services.recorder.access import Authenticator, InvalidToken, Principal, bearer_token, new_token, token_hash

ADMIN = "a" * 40


def authenticator(users: dict[bytes, str], clock=lambda: 0.0) -> tuple[Authenticator, list[bytes]]:  # type: ignore[no-untyped-def]
    lookups: list[bytes] = []

    async def lookup(digest: bytes) -> str | None:
        lookups.append(digest)
        return users.get(digest)

    return Authenticator(ADMIN, lookup, cache_seconds=30, clock=clock), lookups


def resolve(auth: Authenticator, token: str | None) -> Principal | None:
    return asyncio.run(auth.principal(token))


def test_bearer_token_reads_the_authorization_entry_only() -> None:
    assert bearer_token([("x-other", "1")]) is None
    assert bearer_token(None) is None
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"  # the scheme is case-insensitive
    for bad in ("Basic abc", "Bearer", "Bearer ", "abc", "Bearer " + "x" * 300, "Bearer é"):
        with pytest.raises(InvalidToken):
            bearer_token([("authorization", bad)])


def test_new_tokens_are_prefixed_random_and_hashed_to_32_bytes() -> None:
    first, second = new_token(), new_token()
    assert first.startswith("dgt_") and len(first) == 47 and first != second
    assert len(token_hash(first)) == 32 and token_hash(first) != token_hash(second)


def test_admin_user_anonymous_and_unknown_tokens() -> None:
    alice = new_token()
    auth, lookups = authenticator({token_hash(alice): "alice"})
    assert resolve(auth, None) is None
    assert resolve(auth, ADMIN) == Principal(user="", admin=True)
    assert lookups == []  # the admin token is never looked up
    assert resolve(auth, alice) == Principal(user="alice")
    with pytest.raises(InvalidToken):
        resolve(auth, new_token())
    with pytest.raises(InvalidToken):
        resolve(auth, ADMIN[:-1])


def test_a_token_is_looked_up_once_per_cache_period_and_forgotten_on_revoke() -> None:
    now = [0.0]
    alice = new_token()
    users = {token_hash(alice): "alice"}
    auth, lookups = authenticator(users, clock=lambda: now[0])
    for _ in range(3):
        resolve(auth, alice)
    assert len(lookups) == 1
    del users[token_hash(alice)]
    now[0] = 31.0  # past the cache period: looked up again, and now unknown
    with pytest.raises(InvalidToken):
        resolve(auth, alice)
    users[token_hash(alice)] = "alice"
    resolve(auth, alice)
    auth.forget(token_hash(alice))
    del users[token_hash(alice)]
    with pytest.raises(InvalidToken):  # forgotten at once, whatever the cache period
        resolve(auth, alice)


def test_who_may_read_what() -> None:
    alice, admin = Principal("alice"), Principal("", admin=True)
    assert alice.may_read("alice") and not alice.may_read("bob") and not alice.may_read("")
    assert admin.may_read("bob") and admin.may_read("")
    assert not Principal("").may_read("")  # an anonymous record is no user's


def test_a_lookup_that_began_before_a_revocation_does_not_bring_the_token_back() -> None:
    alice = new_token()

    async def scenario() -> None:
        answer = asyncio.Event()

        async def slow_lookup(digest: bytes) -> str | None:
            await answer.wait()
            return "alice"  # what the table said when the lookup was made

        auth = Authenticator(ADMIN, slow_lookup, cache_seconds=30)
        pending = asyncio.create_task(auth.principal(alice))
        await asyncio.sleep(0)
        auth.forget(token_hash(alice))  # revoked while the lookup is under way
        answer.set()
        with pytest.raises(InvalidToken):
            await pending
        with pytest.raises(InvalidToken):
            await auth.principal(alice)

    asyncio.run(scenario())

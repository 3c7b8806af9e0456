"""How a failed login is read: refused, unreachable, or still settling.

The exceptions are the driver's own classes, built the two ways the driver builds them; no
Cassandra is involved (the cluster tests cover the real logins)."""

from __future__ import annotations

import pytest
from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable

from digits.cql import literal, login_refused, login_unsettled, once_settled

REFUSED = NoHostAvailable("Unable to connect to any servers", {"10.0.0.1:9042": AuthenticationFailed("Bad credentials")})
UNREACHABLE = NoHostAvailable("Unable to connect to any servers", {"10.0.0.1:9042": ConnectionRefusedError(111)})
# Session.__init__: the control connection logged in, then every pool failed; only addresses.
POOLS_FAILED = NoHostAvailable("Unable to connect to any servers", ["10.0.0.1"])


def test_a_refused_login_is_told_from_an_unreachable_node() -> None:
    assert login_refused(REFUSED)
    assert not login_refused(UNREACHABLE)
    assert not login_refused(OSError("no route"))


def test_failed_pools_after_a_login_are_unsettled_not_refused() -> None:
    assert not login_refused(POOLS_FAILED)
    assert login_unsettled(POOLS_FAILED)
    assert not login_unsettled(REFUSED)
    assert not login_unsettled(UNREACHABLE)


def test_once_settled_asks_again_until_the_login_settles() -> None:
    answers: list[BaseException | bool] = [POOLS_FAILED, POOLS_FAILED, False]

    def attempt() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert once_settled(attempt, pause=0) is False
    assert answers == []


def test_once_settled_gives_up_after_its_tries_and_passes_other_errors_through() -> None:
    calls = []

    def unsettled() -> bool:
        calls.append(1)
        raise POOLS_FAILED

    with pytest.raises(NoHostAvailable):
        once_settled(unsettled, tries=3, pause=0)
    assert len(calls) == 3

    def unreachable() -> bool:
        calls.append(1)
        raise UNREACHABLE

    calls.clear()
    with pytest.raises(NoHostAvailable):
        once_settled(unreachable, pause=0)
    assert len(calls) == 1


def test_literal_quotes_and_escapes() -> None:
    assert literal("it's") == "'it''s'"

"""CQL helpers that the recorder's migration Job and the dev scripts both need."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable

T = TypeVar("T")


def literal(value: str) -> str:
    """A CQL string literal (role names and passwords cannot be bound as parameters in DCL)."""
    return "'" + value.replace("'", "''") + "'"


def login_refused(exc: BaseException) -> bool:
    """Whether the node turned the credentials down (as opposed to not answering).

    ``NoHostAvailable.errors`` is a dict of host -> error when the control connection failed,
    but a bare list of addresses when the control connection logged in and then every pool
    failed: that happens while Cassandra's credentials cache still holds a just-changed
    password on one connection and not on the next. A list says nothing about why, so it is not
    a refusal here; ``login_unsettled`` tells the caller to ask again.
    """
    errors = exc.errors if isinstance(exc, NoHostAvailable) else None
    return isinstance(errors, dict) and any(isinstance(e, AuthenticationFailed) for e in errors.values())


def login_unsettled(exc: BaseException) -> bool:
    """The control connection logged in but no pool did (see ``login_refused``): try again."""
    return isinstance(exc, NoHostAvailable) and not isinstance(exc.errors, dict)


def once_settled(attempt: Callable[[], T], tries: int = 20, pause: float = 0.5) -> T:
    """``attempt()``, again while it fails with an unsettled login (at most ``tries`` times)."""
    for _ in range(tries - 1):
        try:
            return attempt()
        except NoHostAvailable as exc:
            if not login_unsettled(exc):
                raise
        time.sleep(pause)
    return attempt()

"""Passwords on: the app role, system_auth's replication, and the default superuser's secret."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from cassandra.cluster import NoHostAvailable, Session

from digits.cql import literal, login_refused, once_settled
from scripts.cassandra import cql
from scripts.cassandra.common import DATACENTER, CassandraError
from scripts.cassandra.config import AuthConfig

DEFAULT_SUPERUSER = ("cassandra", "cassandra")
SUPERUSER_SECRET = "superuser.secret"


def secret_file(base_dir: Path, pending: bool = False) -> Path:
    return base_dir / (SUPERUSER_SECRET + (".pending" if pending else ""))


def superuser_candidates(base_dir: Path) -> list[tuple[str, str]]:
    """Rotated password, one being rotated (a start interrupted mid-way), then default."""
    candidates = []
    for path in (secret_file(base_dir), secret_file(base_dir, pending=True)):
        if path.is_file():
            candidates.append((DEFAULT_SUPERUSER[0], path.read_text().strip()))
    return [*candidates, DEFAULT_SUPERUSER]


def can_login(host: str, user: str, password: str) -> bool:
    return once_settled(lambda: _login_once(host, user, password))


def _login_once(host: str, user: str, password: str) -> bool:
    try:
        with cql.login(host, [(user, password)], timeout=15.0):
            return True
    except NoHostAvailable as exc:
        if login_refused(exc):
            return False
        raise


def _wait_schema_agreement(session: Session, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        versions = {row[0] for row in cql.query(session, "SELECT schema_version FROM system.local")}
        versions |= {row[0] for row in cql.query(session, "SELECT schema_version FROM system.peers_v2")}
        if len(versions) == 1:
            return
        if time.monotonic() > deadline:
            raise CassandraError(f"schema versions still disagree: {versions}")
        time.sleep(0.5)


def setup_auth(host: str, auth: AuthConfig, size: int, base_dir: Path, say: Callable[[str], None]) -> None:
    """Make the cluster safe to hand to the application; idempotent, runs on every start.

    - system_auth goes to NetworkTopologyStrategy with one replica per node, so logins keep
      working with a node down. An ALL read afterwards copies rows written under the old
      placement to every new replica (what `nodetool repair system_auth` would do).
    - The app role can log in and gets CREATE, SELECT and MODIFY ON ALL KEYSPACES: it
      creates its keyspace and tables at start-up (Cassandra then grants the creator every
      permission on them) and can still read and write them if another role created them.
      ALL KEYSPACES does not reach the system keyspaces in Cassandra 5.0 (checked: such a
      role is refused SELECT and MODIFY on system_auth.roles), so the app cannot read
      password hashes or edit roles, and it cannot ALTER or DROP keyspaces it did not create.
    - The well-known cassandra/cassandra superuser gets a random password, kept in
      <base_dir>/superuser.secret (mode 0600) for later starts.

    ``host`` is the node to work through; ``size`` the number of nodes.
    """
    secret, pending = secret_file(base_dir), secret_file(base_dir, pending=True)
    with cql.login(host, superuser_candidates(base_dir)) as (session, creds):
        assert creds is not None
        if pending.is_file() and creds[1] == pending.read_text().strip():
            pending.replace(secret)  # the last start changed the password, then died
        rows = cql.query(
            session,
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'system_auth'",
        )
        wanted = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", DATACENTER: str(size)}
        if not rows or dict(rows[0].replication) != wanted:
            say(f"system_auth: NetworkTopologyStrategy {{'{DATACENTER}': {size}}}")
            cql.query(
                session,
                "ALTER KEYSPACE system_auth WITH replication = {'class': "
                f"'NetworkTopologyStrategy', '{DATACENTER}': {size}}}",
            )
            _wait_schema_agreement(session)
            for table in ("roles", "role_members", "role_permissions"):
                cql.query(session, f"SELECT * FROM system_auth.{table}", cql.ALL)

        user = literal(auth.app_user)
        exists = cql.query(session, f"SELECT role FROM system_auth.roles WHERE role = {user}", cql.QUORUM)
        if auth.app_password is not None and not can_login(host, auth.app_user, auth.app_password):
            # ALTER only when needed: Cassandra 5 refuses a role's second password change
            # within 5 s, and a restart should not rewrite what is already right.
            verb = "ALTER" if exists else "CREATE"
            password = literal(auth.app_password)
            cql.query(session, f"{verb} ROLE {user} WITH PASSWORD = {password} AND LOGIN = true")
        elif not exists:
            raise CassandraError(f"role {auth.app_user} does not exist: give a password")
        for permission in ("CREATE", "SELECT", "MODIFY"):
            cql.query(session, f"GRANT {permission} ON ALL KEYSPACES TO {user}")
        say(f"app role {auth.app_user!r}: LOGIN; CREATE, SELECT, MODIFY ON ALL KEYSPACES")

        if creds == DEFAULT_SUPERUSER:
            new_password = secrets.token_urlsafe(24)
            fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(new_password + "\n")
            superuser = DEFAULT_SUPERUSER[0]
            cql.query(session, f"ALTER ROLE {superuser} WITH PASSWORD = {literal(new_password)}")
            pending.replace(secret)
            say(f"default superuser password replaced; it is in {secret}")

"""Cassandra roles for a cluster the chart created: an admin of ours, a least-privilege recorder.

A new Cassandra with PasswordAuthenticator has one superuser, ``cassandra``/``cassandra``, known
to everybody. The migration Job (``python -m services.recorder.migrate``, a Helm hook) makes the
cluster safe before any data arrives, with the passwords from a Kubernetes Secret:

1. log in as the admin; on a new cluster the admin does not exist yet, so log in as the default
   superuser once, create the admin (SUPERUSER, LOGIN) and continue as the admin;
2. replicate ``system_auth`` to ``auth_replication_factor`` nodes, so that logins keep working
   with a node down, and read the role tables at ALL so that every replica has them;
3. lock the default superuser: random password, no LOGIN, no SUPERUSER;
4. create (or re-password) the recorder's role, with LOGIN and nothing else;
5. after the schema exists: GRANT SELECT and MODIFY on the recorder's keyspace, and no more (it
   cannot create, alter or drop anything, nor read another keyspace).

Every step checks before it changes, so the Job can run after every install and upgrade.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time

from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.query import SimpleStatement

from digits.cql import literal, login_refused, once_settled
from services.recorder.config import Config
from services.recorder.session import connect

log = logging.getLogger(__name__)

DEFAULT_SUPERUSER = ("cassandra", "cassandra")


def _as(config: Config, username: str, password: str) -> Config:
    return dataclasses.replace(config, cassandra_username=username, cassandra_password=password)


def admin_session(config: Config) -> tuple[Cluster, Session]:
    """A session as the admin, creating the admin through the default superuser if needed.

    Raises NoHostAvailable while Cassandra is not reachable (the caller waits and retries), and
    PermissionError when neither the admin nor the default superuser may log in.
    """
    admin = _as(config, config.cassandra_admin_username, config.cassandra_admin_password)
    try:
        return connect(admin)
    except NoHostAvailable as exc:
        if not login_refused(exc):
            raise
    try:
        cluster, session = connect(_as(config, *DEFAULT_SUPERUSER))
    except NoHostAvailable as exc:
        if login_refused(exc):
            raise PermissionError(
                f"neither {config.cassandra_admin_username!r} (with the Secret's password) nor the default "
                "superuser can log in: was the Secret replaced after the first install?"
            ) from None
        raise
    try:
        log.info("new cluster: creating the admin role", extra={"role": config.cassandra_admin_username})
        _execute(
            session,
            f"CREATE ROLE IF NOT EXISTS {literal(config.cassandra_admin_username)} "
            f"WITH PASSWORD = {literal(config.cassandra_admin_password)} AND SUPERUSER = true AND LOGIN = true",
        )
    finally:
        cluster.shutdown()
    return connect(admin)


def secure(session: Session, config: Config) -> None:
    """Steps 2-4: system_auth replication, the default superuser locked, the recorder's role."""
    dc, rf = config.local_datacenter, config.auth_replication_factor
    if rf > 0:
        wanted = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", dc: str(rf)}
        row = session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'system_auth'"
        ).one()
        if dict(row["replication"]) != wanted:
            log.info("replicating system_auth", extra={"datacenter": dc, "replicas": rf})
            _execute(session, f"ALTER KEYSPACE system_auth WITH replication = "
                              f"{{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}")  # fmt: skip
            if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=60):
                raise RuntimeError("Cassandra nodes did not agree on the schema within 60 s")
            # What `nodetool repair system_auth` would do: an ALL read copies every row to the new replicas.
            for table in ("roles", "role_members", "role_permissions"):
                session.execute(SimpleStatement(f"SELECT * FROM system_auth.{table}", consistency_level=ConsistencyLevel.ALL))

    default = session.execute(
        "SELECT can_login, is_superuser FROM system_auth.roles WHERE role = %s", [DEFAULT_SUPERUSER[0]]
    ).one()
    if default and (default["can_login"] or default["is_superuser"]):
        log.info("locking the default superuser", extra={"role": DEFAULT_SUPERUSER[0]})
        _execute(
            session,
            f"ALTER ROLE {DEFAULT_SUPERUSER[0]} WITH PASSWORD = {literal(secrets.token_urlsafe(32))} "
            "AND SUPERUSER = false AND LOGIN = false",
        )
        _wait_until_refused(_as(config, *DEFAULT_SUPERUSER))

    user, password = config.cassandra_username, config.cassandra_password
    if not user or not password:
        raise ValueError("RECORDER_CASSANDRA_USERNAME and RECORDER_CASSANDRA_PASSWORD name the recorder's role")
    exists = session.execute("SELECT role FROM system_auth.roles WHERE role = %s", [user]).one()
    if not exists:
        log.info("creating the recorder role", extra={"role": user})
        _execute(session, f"CREATE ROLE {literal(user)} WITH PASSWORD = {literal(password)} AND LOGIN = true")
    elif not _can_login(config):
        # Only when needed: Cassandra 5 refuses a second password change within 5 s.
        log.info("setting the recorder role's password from the Secret", extra={"role": user})
        _execute(session, f"ALTER ROLE {literal(user)} WITH PASSWORD = {literal(password)} AND LOGIN = true")


def grant_recorder(session: Session, config: Config) -> None:
    """Step 5: the recorder reads and writes its keyspace, and nothing else."""
    for permission in ("SELECT", "MODIFY"):
        _execute(session, f"GRANT {permission} ON KEYSPACE {config.keyspace} TO {literal(config.cassandra_username)}")
    log.info("recorder role granted", extra={"role": config.cassandra_username, "keyspace": config.keyspace})


def _wait_until_refused(login: Config, timeout: float = 30.0) -> None:
    """Cassandra caches credentials and roles for a few seconds (credentials_validity,
    roles_validity): the old login keeps working that long. The Job ends only once it is gone."""
    deadline = time.monotonic() + timeout
    while _can_login(login):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{login.cassandra_username!r} can still log in {timeout:.0f} s after it was locked")
        time.sleep(0.5)


def _can_login(config: Config) -> bool:
    return once_settled(lambda: _login_once(config))


def _login_once(config: Config) -> bool:
    try:
        cluster, _ = connect(config)
    except NoHostAvailable as exc:
        if login_refused(exc):
            return False
        raise
    cluster.shutdown()
    return True


def _execute(session: Session, cql: str) -> None:
    # Role changes are written at QUORUM by Cassandra itself; the timeout covers a busy cluster.
    session.execute(cql, timeout=60)

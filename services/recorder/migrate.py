"""``python -m services.recorder.migrate``: create or update the schema, copy the legacy
tables' records once (see ``legacy.py``; ``--copy-again`` copies them again), then exit.

Runs as a Kubernetes Job (a Helm post-install/post-upgrade hook) so that replicas never race
to change the schema. It waits for Cassandra (``RECORDER_MIGRATE_WAIT_SECONDS``) since it may
start before the nodes are up. With an admin login (``RECORDER_CASSANDRA_ADMIN_*``) it first
secures the cluster's roles (see ``roles.py``) and afterwards grants the recorder's role access
to the keyspace; without one it works as the recorder's own role. Safe to run any number of
times.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from digits import logs
from digits.config import describe
from digits.cql import login_refused
from services.recorder import legacy, roles, schema
from services.recorder.config import Config
from services.recorder.session import connect
from services.recorder.store import RecognitionStore

log = logging.getLogger(__name__)
T = TypeVar("T")


def _until(deadline: float, attempt: Callable[[], T]) -> T:
    """``attempt()`` until it stops failing with 'Cassandra is not reachable yet' or time is up."""
    delay = 1.0
    while True:
        try:
            return attempt()
        except (NoHostAvailable, OperationTimedOut, OSError) as exc:
            if isinstance(exc, NoHostAvailable) and login_refused(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.info("waiting for cassandra", extra={"error": str(exc), "retry_in": delay})
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def migrate(config: Config, copy_again: bool = False) -> None:
    deadline = time.monotonic() + config.migrate_wait_seconds
    as_admin = bool(config.cassandra_admin_username)
    cluster, session = _until(deadline, lambda: roles.admin_session(config) if as_admin else connect(config))
    try:
        if as_admin:
            _until(deadline, lambda: roles.secure(session, config))
        _until(deadline, lambda: schema.create(session, config.keyspace, config.datacenters()))
        if as_admin:
            _until(deadline, lambda: roles.grant_recorder(session, config))
        # Not retried here: a copy that fails part-way fails the Job, whose next attempt redoes it.
        legacy.copy(session, config, RecognitionStore(session, config), again=copy_again)
    finally:
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--copy-again", action="store_true",
        help="copy the legacy tables' records even if an earlier run did (idempotent)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    config = Config.from_env()
    logs.setup("recorder-migrate", config.log_level)
    log.info("starting", extra={"config": describe(config, Config.SECRETS)})
    migrate(config, copy_again=args.copy_again)
    log.info("schema ready", extra={"keyspace": config.keyspace, "replication": config.datacenters()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

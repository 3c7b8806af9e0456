"""``python -m services.recorder.migrate``: create or update the schema, then exit.

Runs as a Kubernetes Job before the recorder rolls out, so that replicas never race to
change the schema. Safe to run any number of times.
"""

import logging
import sys

from digits import logs
from services.recorder.config import Config
from services.recorder.store import connect
from services.recorder import schema


def main() -> int:
    config = Config.from_env()
    logs.setup("recorder-migrate", config.log_level)
    cluster, session = connect(config)
    try:
        schema.create(session, config.keyspace, config.datacenters())
    finally:
        cluster.shutdown()
    logging.getLogger(__name__).info(
        "schema ready", extra={"keyspace": config.keyspace, "replication": config.datacenters()}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

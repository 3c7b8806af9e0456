"""``python -m services.recognizer``: run the Recognizer gRPC service."""

import asyncio
import logging

from digits import logs
from digits.config import describe
from digits.metrics import serve_metrics
from services.recognizer.config import Config
from services.recognizer.server import build


def main() -> None:
    config = Config.from_env()
    logs.setup("recognizer", config.log_level)
    logging.getLogger(__name__).info("starting", extra={"config": describe(config)})
    serve_metrics(config.host, config.metrics_port)
    asyncio.run(build(config).run_until_signalled())


if __name__ == "__main__":
    main()

"""``python -m services.gateway``: run the HTTP gateway with uvicorn."""

import digits.grpc_engine  # noqa: F401, I001  (first: it must run before grpc loads)
import logging

import uvicorn

from digits import gc_tuning, logs
from digits.config import describe
from digits.metrics import serve_metrics
from services.gateway.app import create_app
from services.gateway.config import Config


def main() -> None:
    config = Config.from_env()
    logs.setup("gateway", config.log_level)
    logging.getLogger(__name__).info("starting", extra={"config": describe(config)})
    serve_metrics(config.host, config.metrics_port)
    app = create_app(config)
    gc_tuning.settle()
    # uvicorn stops on SIGTERM the graceful way: stop accepting, finish in-flight requests.
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_config=None,  # keep our JSON log handler
        access_log=False,  # one line per request comes from request_log.py, with its id and duration
        proxy_headers=True,
        forwarded_allow_ips=config.forwarded_allow_ips,
        timeout_graceful_shutdown=int(config.grace_seconds),
        server_header=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()

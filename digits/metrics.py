"""The Prometheus endpoint of every service, on a port of its own (never the API port)."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(host: str, port: int) -> None:
    """Expose the default registry on http://host:port/metrics from a daemon thread; port 0 disables it."""
    if port:
        start_http_server(port, addr=host)
        log.info("metrics listening", extra={"address": f"{host}:{port}"})

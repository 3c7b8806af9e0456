"""The gateway's HTTP histograms: every request's time (observed by request_log.RequestLog) and
an upload's parsing time (observed by the upload handler)."""

from __future__ import annotations

from prometheus_client import Histogram

HTTP_SECONDS = Histogram(
    "digits_gateway_request_seconds",
    "HTTP request handling time, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPLOAD_PARSE_SECONDS = Histogram(
    "digits_gateway_upload_parse_seconds",
    "Time to receive and parse an upload's multipart body, up to the image's bytes.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)

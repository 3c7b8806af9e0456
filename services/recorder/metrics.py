"""The recorder's own Prometheus metrics (per-RPC counts and times come from digits.grpc_server)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CASSANDRA_SECONDS = Histogram(
    "digits_recorder_cassandra_seconds",
    "Time spent in Cassandra for one recorder operation (all of its queries), by operation "
    "(record, get, get_image, list_by_user, list_by_window) and consistency level.",
    ["operation", "consistency"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ERRORS = Counter(
    "digits_recorder_errors_total",
    "Failed recorder operations, by operation and kind (unavailable, write_timeout, "
    "read_timeout, client_timeout, no_host, invalid_argument, not_found, data_loss, other).",
    ["operation", "kind"],
)
RECORDS = Counter("digits_recorder_records_total", "Records acknowledged (retries of one request included).")
BATCHLOG_FALLBACKS = Counter(
    "digits_recorder_batchlog_fallbacks_total",
    "Records whose rows were written without the batch log because Cassandra could not write it "
    "(a batch log replica down and not yet detected).",
)

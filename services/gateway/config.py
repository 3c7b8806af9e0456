"""Gateway settings, from environment variables prefixed ``GATEWAY_``."""

from __future__ import annotations

from dataclasses import dataclass

from digits.config import from_env


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"  # GATEWAY_HOST
    port: int = 8080  # GATEWAY_PORT
    # Prometheus' /metrics on a port of its own, never on the public API port; 0 disables it.
    metrics_port: int = 9100  # GATEWAY_METRICS_PORT
    # gRPC targets: host:port, or dns:///name:port to balance calls over every address of a
    # name (a headless Service in Kubernetes).
    recognizer_address: str = "127.0.0.1:50051"  # GATEWAY_RECOGNIZER_ADDRESS
    recorder_address: str = "127.0.0.1:50052"  # GATEWAY_RECORDER_ADDRESS
    # Deadlines for the calls the gateway makes. A down dependency therefore costs a client
    # at most this long before a 503, never a hang.
    recognize_timeout_seconds: float = 5.0  # GATEWAY_RECOGNIZE_TIMEOUT_SECONDS
    record_timeout_seconds: float = 10.0  # GATEWAY_RECORD_TIMEOUT_SECONDS
    read_timeout_seconds: float = 5.0  # GATEWAY_READ_TIMEOUT_SECONDS
    # Calls to the recognizer in flight at once from this process; uploads arriving meanwhile
    # wait and share the next call (RecognizeBatch). See coalescing.py. Two gave 10-15% more
    # uploads/s than four at 64 concurrent uploads (bigger batches), and the same at 16.
    recognize_max_calls: int = 2  # GATEWAY_RECOGNIZE_MAX_CALLS
    # Uploads in one such call: at most the recognizer's RECOGNIZER_MAX_IMAGES_PER_CALL (256).
    recognize_max_batch: int = 32  # GATEWAY_RECOGNIZE_MAX_BATCH
    # The same for the recorder (RecordBatch): uploads' records, written a few to a Cassandra batch.
    record_max_calls: int = 2  # GATEWAY_RECORD_MAX_CALLS
    # Records in one such call: at most the recorder's RECORDER_MAX_RECORDS_PER_CALL (64).
    record_max_batch: int = 32  # GATEWAY_RECORD_MAX_BATCH
    # GET /v1/recognitions: items per page when `limit` is not given, and the largest `limit`.
    default_page_size: int = 20  # GATEWAY_DEFAULT_PAGE_SIZE
    max_page_size: int = 100  # GATEWAY_MAX_PAGE_SIZE
    max_upload_bytes: int = 10 * 1024 * 1024  # GATEWAY_MAX_UPLOAD_BYTES: the whole request body
    # API requests handled at once by one gateway process; more get an immediate 503. 0: no bound.
    max_concurrent_requests: int = 256  # GATEWAY_MAX_CONCURRENT_REQUESTS
    # How long a refusal (503) is held before it is sent: it costs no CPU, and stops clients
    # that retry at once from starving the admitted requests (see limits.py). 0: at once.
    overload_hold_seconds: float = 0.25  # GATEWAY_OVERLOAD_HOLD_SECONDS
    # Proxies whose X-Forwarded-For is believed (the ingress controller in a cluster).
    forwarded_allow_ips: str = "127.0.0.1"  # GATEWAY_FORWARDED_ALLOW_IPS
    grace_seconds: float = 10.0  # GATEWAY_GRACE_SECONDS: in-flight requests finish within this on SIGTERM
    log_level: str = "info"  # GATEWAY_LOG_LEVEL

    @classmethod
    def from_env(cls) -> "Config":
        return from_env(cls, "GATEWAY_")

"""Recorder settings, from environment variables prefixed ``RECORDER_``."""

from __future__ import annotations

from dataclasses import dataclass

from digits.config import from_env


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"  # RECORDER_HOST
    port: int = 50052  # RECORDER_PORT
    metrics_port: int = 9102  # RECORDER_METRICS_PORT; 0 disables /metrics
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)  # RECORDER_CASSANDRA_HOSTS: comma-separated contact points
    cassandra_port: int = 9042  # RECORDER_CASSANDRA_PORT
    cassandra_username: str = ""  # RECORDER_CASSANDRA_USERNAME: empty means no authentication
    cassandra_password: str = ""  # RECORDER_CASSANDRA_PASSWORD: from a Kubernetes Secret
    local_datacenter: str = "datacenter1"  # RECORDER_LOCAL_DATACENTER
    keyspace: str = "digits"  # RECORDER_KEYSPACE
    replication_factor: int = 3  # RECORDER_REPLICATION_FACTOR, used when the schema is created
    write_consistency: str = "LOCAL_QUORUM"  # RECORDER_WRITE_CONSISTENCY
    read_consistency: str = "LOCAL_QUORUM"  # RECORDER_READ_CONSISTENCY
    # Create the keyspace and tables at start. Off in Kubernetes, where a Job runs
    # `python -m services.recorder.migrate` once instead of every replica racing to do it.
    create_schema: bool = True  # RECORDER_CREATE_SCHEMA
    request_timeout_seconds: float = 5.0  # RECORDER_REQUEST_TIMEOUT_SECONDS: one Cassandra query
    max_image_bytes: int = 10 * 1024 * 1024  # RECORDER_MAX_IMAGE_BYTES
    grace_seconds: float = 10.0  # RECORDER_GRACE_SECONDS
    log_level: str = "info"  # RECORDER_LOG_LEVEL

    SECRETS = ("cassandra_password",)

    @classmethod
    def from_env(cls) -> "Config":
        return from_env(cls, "RECORDER_")

"""Recorder settings, from environment variables prefixed ``RECORDER_``."""

from __future__ import annotations

from dataclasses import dataclass

from digits.config import ConfigError, from_env

_CONSISTENCY_LEVELS = {
    "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE", "ANY",
}  # fmt: skip


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"  # RECORDER_HOST
    port: int = 50052  # RECORDER_PORT
    metrics_port: int = 9102  # RECORDER_METRICS_PORT; 0 disables /metrics
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)  # RECORDER_CASSANDRA_HOSTS: comma-separated contact points
    cassandra_port: int = 9042  # RECORDER_CASSANDRA_PORT
    cassandra_username: str = ""  # RECORDER_CASSANDRA_USERNAME: empty means no authentication
    cassandra_password: str = ""  # RECORDER_CASSANDRA_PASSWORD: from a Kubernetes Secret
    # Only the schema migration (`python -m services.recorder.migrate`) uses these: with an admin
    # login it also secures a new cluster's roles (see services/recorder/roles.py).
    cassandra_admin_username: str = ""  # RECORDER_CASSANDRA_ADMIN_USERNAME
    cassandra_admin_password: str = ""  # RECORDER_CASSANDRA_ADMIN_PASSWORD: from a Kubernetes Secret
    auth_replication_factor: int = 0  # RECORDER_AUTH_REPLICATION_FACTOR: system_auth replicas; 0 leaves it
    migrate_wait_seconds: float = 600.0  # RECORDER_MIGRATE_WAIT_SECONDS: how long the migration waits for Cassandra
    local_datacenter: str = "datacenter1"  # RECORDER_LOCAL_DATACENTER
    keyspace: str = "digits"  # RECORDER_KEYSPACE
    # Keyspace replication (NetworkTopologyStrategy), applied by the schema migration:
    # RECORDER_REPLICATION_FACTOR replicas in the local datacenter, unless RECORDER_REPLICATION
    # lists every datacenter explicitly, e.g. "dc1:3,dc2:3".
    replication_factor: int = 3  # RECORDER_REPLICATION_FACTOR
    replication: tuple[str, ...] = ()  # RECORDER_REPLICATION
    write_consistency: str = "LOCAL_QUORUM"  # RECORDER_WRITE_CONSISTENCY
    read_consistency: str = "LOCAL_QUORUM"  # RECORDER_READ_CONSISTENCY
    # Create the keyspace and tables at start. Off in Kubernetes, where a Job runs
    # `python -m services.recorder.migrate` once instead of every replica racing to do it.
    create_schema: bool = True  # RECORDER_CREATE_SCHEMA
    # One Cassandra query; a call's own gRPC deadline shortens it, so the caller gets an
    # answer (UNAVAILABLE) before its deadline rather than DEADLINE_EXCEEDED.
    request_timeout_seconds: float = 5.0  # RECORDER_REQUEST_TIMEOUT_SECONDS
    # How often the driver retries a Cassandra node it lost (the driver's default grows to 10
    # minutes, far too long to come back after a node restart).
    reconnect_max_seconds: float = 5.0  # RECORDER_RECONNECT_MAX_SECONDS
    # When Cassandra cannot write a logged batch's batch log (a node just died and is not yet
    # detected as down), write the same rows unlogged instead of failing: see store.py.
    batchlog_fallback: bool = True  # RECORDER_BATCHLOG_FALLBACK
    # How long an Idempotency-Key is remembered: a retry later than this stores a new record.
    idempotency_ttl_seconds: int = 86_400  # RECORDER_IDEMPOTENCY_TTL_SECONDS
    max_page_size: int = 1000  # RECORDER_MAX_PAGE_SIZE: ListRecognitions
    # Signs page tokens (HMAC-SHA256). Every replica needs the same key (a Kubernetes Secret);
    # empty means a random key per process, so tokens die with it (fine for one local process).
    page_token_key: str = ""  # RECORDER_PAGE_TOKEN_KEY
    max_window_days: int = 31  # RECORDER_MAX_WINDOW_DAYS: longest ListRecognitions time window
    # The operators' bearer token (a Kubernetes Secret; `make run` keeps it in .run/admin-token).
    # Empty: no admin, so no time-window listings and no token issuing.
    admin_token: str = ""  # RECORDER_ADMIN_TOKEN
    # How long a replica trusts a user token it looked up: also how long a revoked token may
    # keep working there.
    token_cache_seconds: float = 30.0  # RECORDER_TOKEN_CACHE_SECONDS
    # Retention: images and client addresses are deleted (Cassandra TTL) this many days after
    # they were recorded; the rest of a record is kept until it is deleted. 0 keeps them forever.
    image_retention_days: int = 30  # RECORDER_IMAGE_RETENTION_DAYS
    client_address_retention_days: int = 7  # RECORDER_CLIENT_ADDRESS_RETENTION_DAYS
    max_image_bytes: int = 10 * 1024 * 1024  # RECORDER_MAX_IMAGE_BYTES
    max_records_per_call: int = 64  # RECORDER_MAX_RECORDS_PER_CALL: RecordBatch
    # The dashboard's counters are added up in memory and written this often (digits/tally.py):
    # one counter batch a second instead of one a record.
    stats_flush_seconds: float = 1.0  # RECORDER_STATS_FLUSH_SECONDS
    # Calls handled at once; more get RESOURCE_EXHAUSTED (a 503 at the gateway) at once.
    max_concurrent_rpcs: int = 512  # RECORDER_MAX_CONCURRENT_RPCS; 0: no bound
    grace_seconds: float = 10.0  # RECORDER_GRACE_SECONDS
    log_level: str = "info"  # RECORDER_LOG_LEVEL

    SECRETS = ("cassandra_password", "cassandra_admin_password", "page_token_key", "admin_token")

    @classmethod
    def from_env(cls) -> "Config":
        config = from_env(cls, "RECORDER_")
        config.datacenters()  # fail at start, not at the first migration, on a typo
        for name in ("image_retention_days", "client_address_retention_days"):
            # Cassandra's TTL is capped at 20 years; and an image must outlive its idempotency key.
            if not 0 <= getattr(config, name) <= 7300:
                raise ConfigError(f"RECORDER_{name.upper()} must be 0 (forever) to 7300 days")
        if config.admin_token and len(config.admin_token) < 32:
            raise ConfigError(
                "RECORDER_ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)"
            )
        if config.max_records_per_call < 1:
            raise ConfigError("RECORDER_MAX_RECORDS_PER_CALL must be at least 1")
        if not 0.05 <= config.stats_flush_seconds <= 60:
            raise ConfigError("RECORDER_STATS_FLUSH_SECONDS must be 0.05 to 60")
        for name in ("write_consistency", "read_consistency"):
            if getattr(config, name).upper() not in _CONSISTENCY_LEVELS:
                raise ConfigError(f"RECORDER_{name.upper()}={getattr(config, name)!r}: not a consistency level")
        return config

    def datacenters(self) -> dict[str, int]:
        """Datacenter -> replication factor for the keyspace."""
        if not self.replication:
            return {self.local_datacenter: self.replication_factor}
        out = {}
        for item in self.replication:
            dc, sep, rf = item.partition(":")
            if not sep or not dc.strip() or not rf.strip().isdigit():
                raise ConfigError(f"RECORDER_REPLICATION: {item!r} is not datacenter:factor")
            out[dc.strip()] = int(rf)
        return out

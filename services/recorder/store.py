"""Recognition records in Cassandra, through the DataStax driver with prepared statements.

The driver's futures complete on its own I/O thread; ``_result`` hands them to the asyncio
loop so the gRPC handlers never block a thread per query.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, ResponseFuture, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import dict_factory
from cassandra.util import uuid_from_time

from services.recorder import schema
from services.recorder.config import Config


@dataclass(frozen=True)
class Record:
    """A recognition as stored. ``image`` is None when it was not asked for."""

    id: uuid.UUID
    request_id: uuid.UUID | None
    digit: int
    confidence: float
    probabilities: list[float]
    model_version: str
    user: str
    image: bytes | None
    content_type: str
    filename: str
    image_size: int
    client_address: str
    received_at: datetime


_COLUMNS = (
    "id, request_id, digit, confidence, probabilities, model_version, user, image, "
    "content_type, filename, image_size, client_address, received_at"
)


def _result(future: ResponseFuture) -> asyncio.Future:
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def resolve(rows):  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(rows))

    def fail(exc):  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(lambda: done.done() or done.set_exception(exc))

    future.add_callbacks(resolve, fail)
    return done


def connect(config: Config) -> tuple[Cluster, Session]:
    """Open a session (blocking). Token-aware routing sends each write straight to a replica."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.local_datacenter)),
        request_timeout=config.request_timeout_seconds,
        row_factory=dict_factory,
    )
    auth = (
        PlainTextAuthProvider(config.cassandra_username, config.cassandra_password)
        if config.cassandra_username
        else None
    )
    cluster = Cluster(
        contact_points=list(config.cassandra_hosts),
        port=config.cassandra_port,
        auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
        connect_timeout=5,
    )
    try:
        return cluster, cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise


class RecognitionStore:
    def __init__(self, session: Session, config: Config) -> None:
        self._session = session
        ks = config.keyspace
        write_cl = ConsistencyLevel.name_to_value[config.write_consistency.upper()]
        read_cl = ConsistencyLevel.name_to_value[config.read_consistency.upper()]
        self._insert = session.prepare(
            f"INSERT INTO {ks}.recognitions ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))})"
        )
        self._insert.consistency_level = write_cl
        # Inserting the same id twice writes the same values: safe for the driver to retry.
        self._insert.is_idempotent = True
        # Without the image unless asked: it is by far the largest column.
        self._select = {}
        for with_image in (False, True):
            columns = _COLUMNS if with_image else _COLUMNS.replace(" image,", "")
            statement = session.prepare(f"SELECT {columns} FROM {ks}.recognitions WHERE id = ?")
            statement.consistency_level = read_cl
            statement.is_idempotent = True
            self._select[with_image] = statement

    @classmethod
    def open(cls, config: Config) -> tuple[Cluster, "RecognitionStore"]:
        cluster, session = connect(config)
        try:
            if config.create_schema:
                schema.create(session, config.keyspace, config.replication_factor, config.local_datacenter)
            return cluster, cls(session, config)
        except BaseException:
            cluster.shutdown()
            raise

    async def insert(
        self,
        *,
        request_id: uuid.UUID | None,
        digit: int,
        confidence: float,
        probabilities: list[float],
        model_version: str,
        user: str,
        image: bytes,
        content_type: str,
        filename: str,
        client_address: str,
    ) -> Record:
        received_at = datetime.now(timezone.utc)
        record = Record(
            id=uuid_from_time(received_at),
            request_id=request_id,
            digit=digit,
            confidence=confidence,
            probabilities=probabilities,
            model_version=model_version,
            user=user,
            image=image,
            content_type=content_type,
            filename=filename,
            image_size=len(image),
            client_address=client_address,
            # Cassandra stores milliseconds; return what a later read will return.
            received_at=received_at.replace(microsecond=received_at.microsecond // 1000 * 1000),
        )
        values = [getattr(record, name.strip()) for name in _COLUMNS.split(",")]
        await _result(self._session.execute_async(self._insert, values))
        return record

    async def get(self, record_id: uuid.UUID, include_image: bool = False) -> Record | None:
        rows = await _result(self._session.execute_async(self._select[include_image], [record_id]))
        if not rows:
            return None
        row = rows[0]
        received_at = row["received_at"]
        if received_at.tzinfo is None:  # the driver returns naive UTC datetimes
            received_at = received_at.replace(tzinfo=timezone.utc)
        return Record(
            id=row["id"],
            request_id=row["request_id"],
            digit=row["digit"],
            confidence=row["confidence"],
            probabilities=list(row["probabilities"] or []),
            model_version=row["model_version"] or "",
            user=row["user"] or "",
            image=row.get("image"),
            content_type=row["content_type"] or "",
            filename=row["filename"] or "",
            image_size=row["image_size"] or 0,
            client_address=row["client_address"] or "",
            received_at=received_at,
        )

"""Where the time log's writes land on a ring: the last part of ``make bench-recorder``.

After ``count`` Record calls through gRPC on the 3-node cluster (its own keyspace), this reads
back what was written and how it spreads:

- the partitions of ``recognitions_by_hour`` written (from the ``recognition_hours`` index) and
  the rows in each (``SELECT COUNT(*)`` per partition);
- each partition's token owner (the primary replica; the driver's token map) and the rows per
  node that this gives; the previous layout put all of a day's rows in one partition (its
  token is computed the same way: nothing is written there any more);
- each node's own count of rows it applied to the table (``system_views.local_write_latency``,
  read on that node): with RF 3 on 3 nodes every node holds every row, so this shows the
  replication, not the spread;
- what the same partitions would do on larger rings (one balanced token per node, as the test
  clusters have, RF 3): how many nodes take writes, and the largest share on one node.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import grpc
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster

from digits.v1 import recorder_pb2_grpc
from scripts.cassandra import balanced_tokens
from scripts.cassandra.cql import login
from services.recorder.schema import SHARDS

RF = 3
LARGER_RINGS = (3, 6, 12, 24, 48)


@dataclass(frozen=True)
class Spread:
    nodes: list[str]
    written: int
    errors: int
    seconds: float
    partitions: dict[tuple[datetime, int], int]  # (hour, shard) -> rows
    primary: dict[tuple[datetime, int], str]  # (hour, shard) -> the node owning its token
    tokens: dict[tuple[datetime, int], int]
    day_primary: str  # the node that owned the day partition of the previous layout
    day_token: int
    local_writes: dict[str, int]  # node -> rows of recognitions_by_hour it applied
    day_owners: Counter  # node -> partitions it owns among the 24 x 32 of the whole day (computed)


async def write(
    address: str, count: int, concurrency: int, request: Callable[[], object], token: str
) -> tuple[int, int, float]:
    """``count`` acknowledged Record calls from ``concurrency`` callers: (done, errors, seconds).
    A failed call is made again (a new upload), so exactly ``count`` are acknowledged."""
    done = errors = issued = 0
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = recorder_pb2_grpc.RecorderStub(channel)

        async def caller() -> None:
            nonlocal done, errors, issued
            while issued < count:
                issued += 1
                try:
                    await stub.Record(request(), timeout=30, metadata=(("authorization", f"Bearer {token}"),))
                    done += 1
                except grpc.aio.AioRpcError:
                    errors, issued = errors + 1, issued - 1
                    if errors > max(100, count // 10):
                        raise

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done, errors, time.perf_counter() - started


def measure(hosts: list[str], keyspace: str, written: int, errors: int, seconds: float) -> Spread:
    cluster = Cluster(hosts, protocol_version=5)
    try:
        session = cluster.connect()
        index = session.execute(f"SELECT day, hour, shard FROM {keyspace}.recognition_hours")
        keys = sorted({(row.hour.replace(tzinfo=timezone.utc), row.shard) for row in index})
        count = session.prepare(f"SELECT COUNT(*) FROM {keyspace}.recognitions_by_hour WHERE hour = ? AND shard = ?")
        count.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        token_map = cluster.metadata.token_map
        ring = token_map.ring  # sorted; a node's token ends the range it owns

        def owner(routing_key: bytes) -> tuple[int, str]:
            token = token_map.token_class.from_key(routing_key)
            host = token_map.token_to_host_owner[ring[bisect.bisect_left(ring, token) % len(ring)]]
            replicas = cluster.metadata.get_replicas(keyspace, routing_key)
            assert host in replicas, "the token owner must be one of the driver's replicas"
            return token.value, host.address

        partitions, primary, tokens = {}, {}, {}
        for key in keys:
            bound = count.bind(list(key))
            partitions[key] = session.execute(bound).one().count
            tokens[key], primary[key] = owner(bound.routing_key)
        first = keys[0][0] if keys else datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        day = session.prepare(f"SELECT id FROM {keyspace}.recognitions_by_day WHERE day = ?")
        day_token, day_primary = owner(day.bind([first.date()]).routing_key)
        midnight = first.replace(hour=0)
        day_owners = Counter(
            owner(count.bind([midnight + timedelta(hours=h), shard]).routing_key)[1]
            for h in range(24)
            for shard in range(SHARDS)
        )
    finally:
        cluster.shutdown()
    local = {}
    for host in hosts:
        with login(host) as (node, _):
            row = node.execute(
                "SELECT count FROM system_views.local_write_latency WHERE keyspace_name = %s AND table_name = %s",
                [keyspace, "recognitions_by_hour"],
            ).one()
            local[host] = row.count if row else 0
    return Spread(hosts, written, errors, seconds, partitions, primary, tokens, day_primary, day_token, local, day_owners)


def _ring_owner(tokens: list[int], token: int) -> int:
    return bisect.bisect_left(tokens, token) % len(tokens)


def projection(spread: Spread, nodes: int) -> tuple[int, int, float, int]:
    """On a ring of ``nodes`` balanced tokens (RF 3): nodes that own some partition's token,
    nodes that are a replica of some partition, the largest share of the rows one node holds,
    and the nodes that would hold the previous layout's day."""
    ring = balanced_tokens(nodes)
    rf = min(RF, nodes)
    owners, holding = Counter(), Counter()
    for key, rows in spread.partitions.items():
        first = _ring_owner(ring, spread.tokens[key])
        owners[first] += rows
        for k in range(rf):
            holding[(first + k) % nodes] += rows
    total = sum(spread.partitions.values()) or 1
    return len(owners), len(holding), max(holding.values(), default=0) / total, rf


def report(spread: Spread, started_at: str) -> str:
    total = sum(spread.partitions.values())
    per_node_partitions = Counter(spread.primary.values())
    per_node_rows = Counter()
    for key, rows in spread.partitions.items():
        per_node_rows[spread.primary[key]] += rows
    nodes = spread.nodes
    largest = max(spread.partitions.values(), default=0)
    hours = len({hour for hour, _ in spread.partitions})

    def by_node(values: Counter) -> str:
        return " / ".join(f"{values.get(n, 0):,}" for n in nodes)

    lines = [
        f"{spread.written:,} `Record` calls through gRPC on {len(nodes)} nodes (RF {RF}, LOCAL_QUORUM), "
        f"{spread.written / spread.seconds:.0f} records/s, {spread.errors} errors; started {started_at}.",
        "",
        f"| layout | partitions written | rows in the largest | partitions per token owner ({' / '.join(nodes)}) "
        "| rows per token owner |",
        "|---|---:|---:|---|---|",
        f"| before: `recognitions_by_day`, key `day` (computed) | 1 | {total:,} | "
        f"{by_node(Counter({spread.day_primary: 1}))} | {by_node(Counter({spread.day_primary: total}))} |",
        f"| now: `recognitions_by_hour`, key `(hour, shard)` | {len(spread.partitions)} ({hours} h x up to {SHARDS}) | "
        f"{largest:,} | {by_node(per_node_partitions)} | {by_node(per_node_rows)} |",
        f"| now, the whole day's 24 x {SHARDS} partitions (computed) | {24 * SHARDS} | | "
        f"{by_node(spread.day_owners)} | |",
        "",
        f"{SHARDS} random tokens an hour fall unevenly on 3 nodes; over a day's {24 * SHARDS} partitions each node "
        "owns about a third.",
        "",
        f"Rows of `recognitions_by_hour` each node applied (its `system_views.local_write_latency`): "
        f"{by_node(Counter(spread.local_writes))}. With RF 3 on 3 nodes every node holds every row, so here "
        "the spread shows only in which node owns each partition's token (its primary replica). On a "
        "larger ring the same partitions spread the writes themselves (one balanced token per node, as "
        "these test clusters have, RF 3; this run's partitions and rows):",
        "",
        "| nodes | before: nodes taking a day's writes | now: nodes owning some partition | "
        "now: nodes taking writes | now: largest share of rows on one node (ideal RF/N) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in LARGER_RINGS:
        owning, holding, share, rf = projection(spread, n)
        lines.append(f"| {n} | {rf} | {owning} | {holding} | {share:.0%} ({rf / n:.0%}) |")
    return "\n".join(lines)


def check(spread: Spread) -> None:
    """What the run must show, or the benchmark fails: every record in the table once, spread."""
    total = sum(spread.partitions.values())
    # A call that failed may still have stored its record (a timeout after the write).
    if not spread.written <= total <= spread.written + spread.errors:
        raise AssertionError(f"{spread.written} records acknowledged but {total} rows in recognitions_by_hour")
    if len(set(spread.primary.values())) < len(spread.nodes):
        raise AssertionError(f"the partitions' tokens are owned by only {set(spread.primary.values())}")

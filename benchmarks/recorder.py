"""``make bench-recorder``: Record and RecordBatch throughput and latency on 1 and on 3
Cassandra nodes, and where the time log's writes land on the 3-node ring.

For each topology this starts its own Cassandra (1 node on 127.0.0.31, or 3 nodes on
127.0.0.41-43, JMX ports of their own, so neither the test suite nor ``make run`` is touched),
runs the recorder as a separate process (RF = node count, LOCAL_QUORUM writes), and drives
its gRPC ``Record`` with 1, 16 and 64 concurrent callers for a fixed time after a warm-up,
then ``RecordBatch`` with 16 records a call (what the gateway sends under load) with 1, 4 and
16 callers. Each record is one real upload (tests/data/seven.png) with a fresh request id. On the
3-node cluster a second recorder then writes ``--spread-writes`` records (20,000) in a keyspace
of its own, and ``recorder_spread`` reports the partitions they went to and which nodes own
them (``--duration 0`` runs only that part).

Prints markdown tables (records/s, p50 and p99 latency; the spread) and writes them, with a
plot, to benchmarks/results/. Everything it starts is stopped at the end, on success or failure.

Numbers are for this machine and the test clusters' settings (all nodes on one host, 512 MB
heaps, C1-only JIT for fast starts): compare rows with each other, not with production.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from benchmarks import recorder_spread as spread
from digits.v1 import recorder_pb2, recorder_pb2_grpc
from scripts.cassandra import CassandraCluster
from scripts.devstack import free_port
from scripts.waiting import grpc_serving, wait_until

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
IMAGE = (ROOT / "tests" / "data" / "seven.png").read_bytes()
ADMIN_TOKEN = secrets.token_urlsafe(32)  # this run's recorder only
TOPOLOGIES = {
    1: (["127.0.0.31"], 7231),
    3: (["127.0.0.41", "127.0.0.42", "127.0.0.43"], 7241),
}
CONCURRENCY = (1, 16, 64)
# RecordBatch: records a call, and concurrent calls (16 calls of 16 hold 256 records in flight).
BATCH = 16
BATCH_CONCURRENCY = (1, 4, 16)
SPREAD_NODES = 3


@dataclass(frozen=True)
class Result:
    nodes: int
    per_call: int  # records a call: 1 is Record, more is RecordBatch
    concurrency: int  # calls in flight
    records: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def _request() -> recorder_pb2.RecordRequest:
    received_at = Timestamp()
    received_at.GetCurrentTime()
    return recorder_pb2.RecordRequest(
        request_id=str(uuid.uuid4()),
        recognition=recorder_pb2.Recognition(
            digit=7, confidence=0.99, probabilities=[0.001] * 7 + [0.99, 0.001, 0.001], model_version="bench",
            user=f"bench-{uuid.uuid4().hex[:4]}", image=IMAGE, content_type="image/png", filename="seven.png",
            client_address="127.0.0.1", received_at=received_at,
        ),
    )  # fmt: skip


async def _drive(
    address: str, concurrency: int, per_call: int, warmup: float, duration: float
) -> tuple[list[float], int, int]:
    """Latencies (s) of the calls that started after the warm-up and ended before the end, the
    records those calls stored, and the errors (failed calls and refused records)."""
    latencies: list[float] = []
    stored = errors = 0
    metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = recorder_pb2_grpc.RecorderStub(channel)
        start = time.perf_counter()
        measure_from, end = start + warmup, start + warmup + duration

        async def one_call() -> int:
            """Records stored by one call."""
            nonlocal errors
            if per_call == 1:
                await stub.Record(_request(), timeout=10, metadata=metadata)
                return 1
            batch = recorder_pb2.RecordBatchRequest(requests=[_request() for _ in range(per_call)])
            response = await stub.RecordBatch(batch, timeout=10, metadata=metadata)
            refused = sum(result.HasField("error") for result in response.results)
            errors += refused
            return per_call - refused

        async def caller() -> None:
            nonlocal errors, stored
            while (began := time.perf_counter()) < end:
                try:
                    records = await one_call()
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                finished = time.perf_counter()
                if began >= measure_from and finished <= end:
                    latencies.append(finished - began)
                    stored += records

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, stored, errors


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@contextmanager
def _recorder(hosts: list[str], keyspace: str, log_path: Path) -> Iterator[str]:
    """A recorder process on ``hosts`` (RF = their number, LOCAL_QUORUM), until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "RECORDER_HOST": "127.0.0.1",
        "RECORDER_PORT": str(port),
        "RECORDER_METRICS_PORT": "0",
        "RECORDER_CASSANDRA_HOSTS": ",".join(hosts),
        "RECORDER_KEYSPACE": keyspace,
        "RECORDER_REPLICATION_FACTOR": str(len(hosts)),
        "RECORDER_WRITE_CONSISTENCY": "LOCAL_QUORUM",
        "RECORDER_LOG_LEVEL": "warning",
        # Records are made under users (the heavier write: the history rows too), which takes
        # the admin token.
        "RECORDER_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with open(log_path, "wb") as log:
        recorder = subprocess.Popen([sys.executable, "-m", "services.recorder"], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            address = f"127.0.0.1:{port}"
            with grpc_serving(address) as serving:
                wait_until(serving, 120, "the recorder", lambda: None if recorder.poll() is None else "exited during start-up")
            yield address
        finally:
            recorder.terminate()
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()


def _throughput(
    nodes: int, address: str, per_call: int, concurrency: int, warmup: float, duration: float
) -> Result:
    latencies, stored, errors = asyncio.run(_drive(address, concurrency, per_call, warmup, duration))
    result = Result(
        nodes, per_call, concurrency, stored, duration, errors,
        _percentile(latencies, 50) * 1000, _percentile(latencies, 99) * 1000,
    )  # fmt: skip
    print(
        f"  {nodes} node(s), {_rpc(per_call)}, {concurrency:>2} calls in flight: "
        f"{result.per_second:7.1f} records/s, p50 {result.p50_ms:6.1f} ms, p99 {result.p99_ms:6.1f} ms a call, "
        f"errors {errors}",
        flush=True,
    )
    return result


def _rpc(per_call: int) -> str:
    return "Record" if per_call == 1 else f"RecordBatch of {per_call}"


def bench_topology(
    nodes: int, work_dir: Path, warmup: float, duration: float, spread_writes: int = 0
) -> tuple[list[Result], str | None]:
    """The throughput runs on ``nodes`` nodes, then (with ``spread_writes``) where that many
    records land on the ring (``recorder_spread``), in a keyspace of its own."""
    hosts, jmx = TOPOLOGIES[nodes]
    cluster = CassandraCluster(work_dir / f"cassandra{nodes}", hosts=hosts, jmx_port_base=jmx, fast_start=True)
    results: list[Result] = []
    spread_text = None
    try:
        cluster.start(timeout=300)
        if duration > 0:
            with _recorder(hosts, "digits_bench", work_dir / f"recorder{nodes}.log") as address:
                results = [_throughput(nodes, address, 1, c, warmup, duration) for c in CONCURRENCY]
                results += [_throughput(nodes, address, BATCH, c, warmup, duration) for c in BATCH_CONCURRENCY]
        if spread_writes:
            started_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            print(f"  {nodes} node(s): {spread_writes:,} records for the spread of the time log", flush=True)
            with _recorder(hosts, "digits_spread", work_dir / f"recorder{nodes}-spread.log") as address:
                done, errors, seconds = asyncio.run(spread.write(address, spread_writes, 64, _request, ADMIN_TOKEN))
            measured = spread.measure(hosts, "digits_spread", done, errors, seconds)
            spread.check(measured)
            spread_text = spread.report(measured, started_at)
        return results, spread_text
    finally:
        cluster.stop()


def table(results: list[Result]) -> str:
    lines = [
        "| nodes (RF) | call | calls in flight | records/s | p50 ms a call | p99 ms a call | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.nodes} ({r.nodes}) | {_rpc(r.per_call)} | {r.concurrency} | {r.per_second:.1f} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.errors} |"
        )
    return "\n".join(lines)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for nodes, per_call in sorted({(r.nodes, r.per_call) for r in results}):
        rows = [r for r in results if (r.nodes, r.per_call) == (nodes, per_call)]
        # x: records in flight, so that both calls share an axis
        xs = [r.concurrency * per_call for r in rows]
        label = f"{nodes} node{'s' if nodes > 1 else ''} (RF {nodes}), {_rpc(per_call)}"
        left.plot(xs, [r.per_second for r in rows], marker="o", label=label)
        right.plot(xs, [r.p50_ms for r in rows], marker="o", label=f"{label} p50")
    ticks = sorted({c for c in CONCURRENCY} | {c * BATCH for c in BATCH_CONCURRENCY})
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(c) for c in ticks])
        ax.set_xlabel("records in flight")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("records/s")
    left.set_title("Records stored (LOCAL_QUORUM)")
    right.set_ylabel("latency of a call, ms")
    right.set_title("Call latency (p50)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring, per run")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured, per run (0: none)")
    parser.add_argument(
        "--spread-writes", type=int, default=20_000,
        help="records written on the 3-node cluster to show where the time log's writes land (0: none)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    started = time.monotonic()
    results: list[Result] = []
    spread_text = None
    try:
        for nodes in TOPOLOGIES:
            if args.duration <= 0 and nodes != SPREAD_NODES:
                continue
            print(f"{nodes} node(s): starting Cassandra and the recorder", flush=True)
            runs, text = bench_topology(
                nodes, work_dir, args.warmup, args.duration, args.spread_writes if nodes == SPREAD_NODES else 0
            )
            results += runs
            spread_text = text or spread_text
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if results:
        text = table(results)
        print(f"\nRecord and RecordBatch through gRPC, image {len(IMAGE)} bytes, {args.duration:.0f} s per run "
              f"({time.monotonic() - started:.0f} s in all):\n\n{text}\n")  # fmt: skip
        (OUT / "recorder.md").write_text(text + "\n")
        plot(results, OUT / "recorder.png")
        print(f"wrote {OUT / 'recorder.md'} and {OUT / 'recorder.png'}")
    if spread_text:
        print(f"\nWhere the time log's writes land:\n\n{spread_text}\n")
        (OUT / "recorder-spread.md").write_text(spread_text + "\n")
        print(f"wrote {OUT / 'recorder-spread.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

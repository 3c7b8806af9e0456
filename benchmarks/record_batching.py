"""``make bench-record-batching``: what writing several records to one logged batch saves.

Starts its own Cassandra node (127.0.0.51, so neither the test suite nor ``make run`` is
touched), then stores the same records through the recorder's own store (``store.record``, the
code RecordBatch runs) at a steady rate, one record a call or several, and reports the CPU that
Cassandra and this process spend per record. At a few hundred records a second a lone record's
cost is mostly the request itself (threads waking, the batch log), which is why the gateway
coalesces uploads' records into RecordBatch calls.

Prints a markdown table and writes it to benchmarks/results/record-batching.md. Numbers are
for this machine and a test node (512 MB heap, C1-only JIT): compare rows with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.http.procs import cpu_seconds
from scripts.cassandra import CassandraCluster
from services.recorder.config import Config
from services.recorder.ids import record_id, to_millis
from services.recorder.records import Record
from services.recorder.session import connect
from services.recorder.store import RecognitionStore

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "record-batching.md"
IMAGE = (ROOT / "tests" / "data" / "seven.png").read_bytes()
HOST, JMX = "127.0.0.51", 7251
GROUPS = (1, 4, 8, 16)


def _record() -> Record:
    now = to_millis(datetime.now(timezone.utc))
    return Record(
        id=record_id(now, uuid.uuid4()), request_id=None, digit=7, confidence=0.99, probabilities=[0.1] * 10,
        model_version="00f06f54cf9f", user="", image=IMAGE, content_type="image/png", filename="seven.png",
        image_size=len(IMAGE), client_address="127.0.0.1", received_at=now, number="7",
        readings=((7, 0.99, 10, 12, 60, 88),),
    )  # fmt: skip


async def _run(store: RecognitionStore, pid: int, group: int, records: int, rate: float) -> tuple[float, float, float]:
    """Cassandra's and this process's CPU ms per record, and records/s, storing ``records`` in
    calls of ``group`` at ``rate`` records/s."""
    batches = [[_record() for _ in range(group)] for _ in range(records // group)]
    cassandra, own, started = cpu_seconds([pid]), time.process_time(), time.perf_counter()
    pending = []
    for batch in batches:
        pending.append(asyncio.ensure_future(store.record(batch, time.monotonic() + 10)))
        await asyncio.sleep(group / rate)
    await asyncio.gather(*pending)
    done = group * len(batches)
    seconds = time.perf_counter() - started
    return (
        1000 * (cpu_seconds([pid]) - cassandra) / done,
        1000 * (time.process_time() - own) / done,
        done / seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000, help="records per run")
    parser.add_argument("--rate", type=float, default=250.0, help="records a second")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="digits-batching-") as work:
        cluster = CassandraCluster(Path(work) / "cassandra", hosts=[HOST], jmx_port_base=JMX, fast_start=True)
        try:
            cluster.start(timeout=300)
            pid = cluster.pid(0)
            assert pid is not None
            config = Config(cassandra_hosts=(HOST,), keyspace="digits_batching", replication_factor=1)
            session_cluster, session = connect(config)
            store = RecognitionStore.prepare(session, config)
            rows = []
            for group in (1, *GROUPS):  # the first run warms the node up and is not reported
                cassandra, own, per_second = asyncio.run(_run(store, pid, group, args.records, args.rate))
                print(f"  {group:2d} a call: Cassandra {cassandra:.2f} ms, recorder {own:.2f} ms a record, {per_second:.0f}/s", flush=True)
                rows.append((group, cassandra, own, per_second))
            session_cluster.shutdown()
        finally:
            cluster.stop()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Records per logged batch: CPU per record",
        "",
        f"- date: {when}; command: `make bench-record-batching` ({args.records:,} records a run at {args.rate:.0f}/s)",
        "- one Cassandra node (RF 1, LOCAL_QUORUM), `tests/data/seven.png` as each record's image (inline)",
        "",
        "| records a call | Cassandra CPU ms a record | recorder's store CPU ms a record | records/s |",
        "|---:|---:|---:|---:|",
        *(f"| {g} | {c:.2f} | {o:.2f} | {r:.0f} |" for g, c, o, r in rows[1:]),
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Micro-benchmark: CPU time of ``services.recognizer.segment.read`` per typical upload.

That is what the recognizer runs on every image: decoding, the MNIST recipe (preprocess.py)
and finding the digits (one for these uploads); ``to_mnist`` alone would leave the last out.

The target is ≤ 1 ms of CPU per upload. Each image is preprocessed repeatedly in this process
(one thread) after a warm-up call; the figure is the median of ``time.process_time()`` deltas,
which counts CPU of every thread of the process (so work pushed to helper threads is not missed)
and not time spent waiting for a core the other processes on the machine hold.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from benchmarks.http.payloads import Payload, for_preprocessing

TARGET_MS = 1.0


@dataclass(frozen=True)
class PreprocessPoint:
    payload: str
    description: str
    size_bytes: int
    cpu_ms: float  # median
    cpu_p90_ms: float
    wall_ms: float  # median
    repetitions: int


def measure(payload: Payload, seconds: float, min_repetitions: int = 20) -> PreprocessPoint:
    from services.recognizer.segment import read

    read(payload.data)  # warm-up: imports, plugin registration, first allocations
    cpu: list[float] = []
    wall: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(cpu) < min_repetitions:
        w, c = time.perf_counter(), time.process_time()
        read(payload.data)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    deciles = statistics.quantiles(cpu, n=10)
    return PreprocessPoint(payload.name, payload.description, len(payload.data), statistics.median(cpu) * 1e3,
                           deciles[8] * 1e3, statistics.median(wall) * 1e3, len(cpu))  # fmt: skip


def run(seconds_each: float = 1.5) -> list[PreprocessPoint]:
    with threadpool_limits(1, user_api="blas"):  # as the recognizer runs it (server.build)
        return [measure(p, seconds_each) for p in for_preprocessing()]


def table(points: list[PreprocessPoint]) -> str:
    rows = [
        f"| upload | bytes | CPU ms (median) | CPU ms (p90) | wall ms (median) | runs | ≤ {TARGET_MS:g} ms |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for p in points:
        ok = "yes" if p.cpu_ms <= TARGET_MS else "**no**"
        rows.append(f"| {p.description} | {p.size_bytes:,} | {p.cpu_ms:.2f} | {p.cpu_p90_ms:.2f} | {p.wall_ms:.2f} "
                    f"| {p.repetitions} | {ok} |")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(run()))

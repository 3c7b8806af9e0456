"""Markdown tables of the load runs: throughput and latency, ratios, CPU per request."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.http.stages import Stage
from benchmarks.http.wrk import WrkResult, combine

DIGITS, SEED, CEILING = "digits", "seed-style", "ceiling"
# Process trees whose CPU serves each system's requests (wrk's is reported beside them).
SERVING = {
    DIGITS: ("gateway", "recognizer", "recorder", "cassandra"),
    SEED: ("seed", "cassandra"),
    CEILING: ("gateway",),
}
PROCESS_COLUMNS = ("gateway", "recognizer", "recorder", "cassandra", "seed")


@dataclass
class Point:
    """One wrk run against one system."""

    system: str  # DIGITS, SEED or CEILING
    payload: str  # the upload's name, or "GET /healthz"
    concurrency: int
    result: WrkResult
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # process tree -> CPU s during the run

    def cpu_ms_per_request(self, process: str) -> float | None:
        if process not in self.cpu_seconds or not self.result.requests:
            return None
        return 1000.0 * self.cpu_seconds[process] / self.result.requests


def merge(points: list[Point]) -> Point:
    """The stretches (rounds) of one setting as one point; CPU seconds add up."""
    first = points[0]
    cpu: dict[str, float] = {}
    for p in points:
        for name, seconds in p.cpu_seconds.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    return Point(first.system, first.payload, first.concurrency, combine([p.result for p in points]), cpu)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "–"


def errors_cell(r: WrkResult) -> str:
    """Total non-2xx plus socket errors, with what they were."""
    parts = []
    if r.overloaded:
        parts.append(f"503×{r.overloaded}")
    if r.other_status:
        parts.append(f"{r.last_other_status or 'other'}×{r.other_status}")
    parts += [f"{k}×{v}" for k, v in r.socket_errors.items() if v]
    return f"{r.errors} ({', '.join(parts)})" if parts else "0"


def _find(points: list[Point], system: str, payload: str | None, concurrency: int) -> Point | None:
    for p in points:
        if p.system == system and p.concurrency == concurrency and (payload is None or p.payload == payload):
            return p
    return None


def _payloads(points: list[Point]) -> list[str]:
    return list(dict.fromkeys(p.payload for p in points if p.system != CEILING))


def _concurrencies(points: list[Point]) -> list[int]:
    return sorted({p.concurrency for p in points})


def load_table(points: list[Point]) -> str:
    """Every run: requests/s answered 2xx, latency percentiles over all responses, errors."""
    rows = [
        "| concurrency | system | upload | req/s (2xx) | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in _concurrencies(points):
        for p in sorted(
            (p for p in points if p.concurrency == c), key=lambda p: (p.payload, p.system != DIGITS)
        ):
            r = p.result
            rows.append(f"| {c} | {p.system} | {p.payload} | {r.ok_per_second:,.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
                        f"| {r.p99_ms:.1f} | {r.max_ms:.0f} | {errors_cell(r)} |")  # fmt: skip
    return "\n".join(rows)


def ratio_table(points: list[Point]) -> str:
    """digits ÷ seed-style and digits ÷ ceiling (the same gateway's GET /healthz), by 2xx req/s."""
    rows = [
        "| concurrency | upload | digits req/s | seed-style req/s | ceiling req/s | digits ÷ seed-style | digits ÷ ceiling |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in _concurrencies(points):
        ceiling = _find(points, CEILING, None, c)
        ceiling_rps = ceiling.result.ok_per_second if ceiling else 0.0
        for payload in _payloads(points):
            digits, seed = _find(points, DIGITS, payload, c), _find(points, SEED, payload, c)
            if digits is None:
                continue
            d = digits.result.ok_per_second
            s = seed.result.ok_per_second if seed else 0.0
            rows.append(f"| {c} | {payload} | {d:,.0f} | {s:,.0f} | {ceiling_rps:,.0f} | {_ratio(d, s)} "
                        f"| {_ratio(d, ceiling_rps)} |")  # fmt: skip
    return "\n".join(rows)


def cpu_table(points: list[Point]) -> str:
    """CPU ms per request (any status) of each process tree serving the system, and of wrk."""
    head = " | ".join(PROCESS_COLUMNS)
    rows = [f"| concurrency | system | upload | req/s | {head} | total | wrk |",
            "|---:|---|---|---:|" + "---:|" * (len(PROCESS_COLUMNS) + 2)]  # fmt: skip
    for c in _concurrencies(points):
        for p in sorted(
            (p for p in points if p.concurrency == c), key=lambda p: (p.payload, p.system != DIGITS)
        ):
            serving = SERVING[p.system]
            cells, total = [], 0.0
            for process in PROCESS_COLUMNS:
                ms = p.cpu_ms_per_request(process) if process in serving else None
                cells.append(f"{ms:.2f}" if ms is not None else "–")
                total += ms or 0.0
            wrk_ms = 1000.0 * p.result.wrk_cpu_seconds / p.result.requests if p.result.requests else 0.0
            rps = p.result.requests / p.result.seconds if p.result.seconds else 0.0
            rows.append(f"| {c} | {p.system} | {p.payload} | {rps:,.0f} | {' | '.join(cells)} | {total:.2f} "
                        f"| {wrk_ms:.2f} |")  # fmt: skip
    return "\n".join(rows)


def stage_table(stages: list[Stage]) -> str:
    """Stage, mean ms and share of the client-observed request; nesting shown by indentation."""
    whole = stages[0].mean_ms if stages and stages[0].mean_ms else None
    rows = ["| stage | mean ms | share of the request | from |", "|---|---:|---:|---|"]
    for s in stages:
        name = "· " * s.depth + s.name  # markdown trims leading spaces in a cell
        if s.mean_ms is None:
            rows.append(f"| {name} | n/a | | {s.source} |")
            continue
        share = f"{100.0 * s.mean_ms / whole:.0f}%" if whole else ""
        rows.append(f"| {name} | {s.mean_ms:.2f} | {share} | {s.source} |")
    return "\n".join(rows)

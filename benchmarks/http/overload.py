"""The overload case: far more concurrent uploads than the gateway admits, for a while.

wrk runs in timed mode (see wrk.py), so the latency of every response is known with its status:
the answered (2xx) are measured apart from the immediate 503s. A "wait past the deadline" is a
response of any status that took longer than the gateway's own deadlines for one upload
(Recognize + Record), or a request wrk gave up on; a bounded gateway has none. Meanwhile the RSS
of each service's process tree is sampled every 0.5 s, to show that memory levels off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.http import wrk
from benchmarks.http.procs import RssSampler, RssTrace

MB = 1024 * 1024
# Growth from the middle to the end of the case above which memory is flagged as still growing.
GROWTH_WARNING = 0.10


@dataclass
class OverloadResult:
    concurrency: int
    deadline_s: float
    result: wrk.WrkResult
    rss: RssTrace

    def latencies(self, ok: bool) -> np.ndarray:
        """Latencies (ms) of the answered (``ok``) or of the 503s, as measured in timed mode."""
        return np.array([ms for status, ms in self.result.timed
                         if ms >= 0 and ((200 <= status < 300) if ok else status == 503)])  # fmt: skip

    @property
    def untimed(self) -> int:
        """Responses whose X-Request-ID did not come back (their latency is unknown)."""
        return sum(1 for _, ms in self.result.timed if ms < 0)

    @property
    def past_deadline(self) -> int:
        limit = self.deadline_s * 1000.0
        slow = sum(1 for _, ms in self.result.timed if ms > limit)  # whatever the status
        return slow + self.result.socket_errors["timeout"]


def run(url: str, body: Path, content_type: str, concurrency: int, seconds: float, deadline_s: float,
        work_dir: Path, roots: dict[str, int], wrk_path: str) -> OverloadResult:  # fmt: skip
    with RssSampler(roots) as sampler:
        result = wrk.run(url, concurrency, seconds, work_dir, body_path=body, content_type=content_type,
                         timeout=deadline_s + 15, timed=True, wrk=wrk_path)  # fmt: skip
    return OverloadResult(concurrency, deadline_s, result, sampler.trace)


def _pct(values: np.ndarray, q: float) -> str:
    return f"{float(np.percentile(values, q)):.0f}" if values.size else "–"


def summary_table(o: OverloadResult) -> str:
    r = o.result
    ok, refused = o.latencies(True), o.latencies(False)
    other = r.other_status + sum(v for k, v in r.socket_errors.items())
    rows = [
        "| what | value |",
        "|---|---:|",
        f"| answered (2xx) | {r.ok:,} ({r.ok_per_second:,.0f}/s) |",
        f"| 503s (of which with Retry-After) | {r.overloaded:,} ({r.overloaded_retry_after:,}) |",
        f"| other errors (statuses, sockets, wrk timeouts) | {other:,} |",
        f"| answered: p50 / p99 / max ms | {_pct(ok, 50)} / {_pct(ok, 99)} / {_pct(ok, 100)} |",
        f"| 503s: p50 / p99 / max ms | {_pct(refused, 50)} / {_pct(refused, 99)} / {_pct(refused, 100)} |",
        f"| slowest response of any status, ms | {r.max_ms:,.0f} |",
        f"| waits past the deadline ({o.deadline_s:g} s) | {o.past_deadline} |",
    ]
    if o.untimed:
        rows.append(f"| responses without the request id back (untimed) | {o.untimed} |")
    return "\n".join(rows)


def rss_table(o: OverloadResult) -> str:
    names = list(o.rss.samples[0][1]) if o.rss.samples else []
    rows = ["| process tree | RSS start MB | middle MB | end MB | peak MB | middle → end |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name in names:
        start, middle, end = (o.rss.at(f, name) for f in (0.0, 0.5, 1.0))
        growth = (end - middle) / middle if middle else 0.0
        flag = " (still growing?)" if growth > GROWTH_WARNING else ""
        rows.append(f"| {name} | {start / MB:.0f} | {middle / MB:.0f} | {end / MB:.0f} | {o.rss.peak(name) / MB:.0f} "
                    f"| {growth * 100:+.1f}%{flag} |")  # fmt: skip
    return "\n".join(rows)

"""make bench: the ratio and CPU tables (benchmarks/http/report.py) and the overload arithmetic."""

import pytest

from benchmarks.http import report
from benchmarks.http.overload import OverloadResult
from benchmarks.http.procs import RssTrace
from benchmarks.http.report import CEILING, DIGITS, SEED, Point
from benchmarks.http.wrk import WrkResult


def _result(ok: int, seconds: float = 10.0, overloaded: int = 0, timeouts: int = 0, **extra) -> WrkResult:  # type: ignore[no-untyped-def]
    return WrkResult(
        seconds=seconds, requests=ok + overloaded, ok=ok, overloaded=overloaded, overloaded_retry_after=overloaded,
        other_status=0, last_other_status=0, socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": timeouts},
        p50_ms=1.0, p95_ms=2.0, p99_ms=3.0, max_ms=4.0, mean_ms=1.5, **extra,
    )  # fmt: skip


def test_ratios_compare_2xx_per_second_at_the_same_concurrency() -> None:
    points = [
        Point(CEILING, "GET /healthz", 16, _result(50_000)),
        Point(DIGITS, "seven", 16, _result(4_000, overloaded=999)),  # 503s are not throughput
        Point(SEED, "seven", 16, _result(1_000)),
        Point(CEILING, "GET /healthz", 64, _result(60_000)),
        Point(DIGITS, "seven", 64, _result(6_000)),
        Point(SEED, "seven", 64, _result(0)),  # a seed that answered nothing: no ratio, no crash
    ]
    lines = report.ratio_table(points).splitlines()
    assert lines[2] == "| 16 | seven | 400 | 100 | 5,000 | 4.00× | 0.08× |"
    assert lines[3] == "| 64 | seven | 600 | 0 | 6,000 | – | 0.10× |"


def test_cpu_per_request_counts_only_the_processes_serving_that_system() -> None:
    seed = Point(SEED, "seven", 1, _result(100, wrk_cpu_seconds=0.05),
                 {"gateway": 0.5, "recognizer": 0.5, "recorder": 0.5, "cassandra": 0.2, "seed": 0.4})  # fmt: skip
    row = report.cpu_table([seed]).splitlines()[2]
    # gateway, recognizer, recorder idle while the seed runs: shown as –, not in the total.
    assert row == "| 1 | seed-style | seven | 10 | – | – | – | 2.00 | 4.00 | 6.00 | 0.50 |"


def test_errors_cell_names_each_kind() -> None:
    assert report.errors_cell(_result(10)) == "0"
    assert report.errors_cell(_result(10, overloaded=3, timeouts=1)) == "4 (503×3, timeout×1)"


def test_waits_past_the_deadline_count_every_slow_response_and_wrk_timeouts() -> None:
    timed = [(201, 100.0), (201, 15_001.0), (503, 2.0), (503, 20_000.0), (502, 30_000.0), (201, -1.0)]
    o = OverloadResult(512, 15.0, _result(3, overloaded=2, timeouts=1, timed=timed), RssTrace())
    assert o.past_deadline == 4  # the slow 201, 503 and 502, and the request wrk gave up on
    assert o.untimed == 1
    assert list(o.latencies(True)) == [100.0, 15_001.0]


def test_rss_trace_start_middle_end_and_peak() -> None:
    trace = RssTrace([(0.0, {"gateway": 100}), (0.5, {"gateway": 300}), (1.0, {"gateway": 200})])
    assert (trace.at(0, "gateway"), trace.at(0.5, "gateway"), trace.at(1, "gateway")) == (100, 300, 200)
    assert trace.peak("gateway") == 300


def test_rounds_of_one_point_add_up_counts_and_cpu_and_take_median_percentiles() -> None:
    rounds = [
        Point(DIGITS, "seven", 16, _result(100, seconds=5.0, wrk_cpu_seconds=0.1), {"gateway": 1.0}),
        Point(
            DIGITS,
            "seven",
            16,
            _result(300, seconds=5.0, overloaded=2, wrk_cpu_seconds=0.1),
            {"gateway": 2.0},
        ),
        Point(DIGITS, "seven", 16, _result(200, seconds=5.0, wrk_cpu_seconds=0.1), {"gateway": 1.5}),
    ]
    rounds[1].result.p99_ms, rounds[1].result.max_ms = 50.0, 99.0
    rounds[2].result.p99_ms = 7.0
    merged = report.merge(rounds)
    r = merged.result
    assert (r.seconds, r.ok, r.requests, r.overloaded) == (15.0, 600, 602, 2)
    assert r.ok_per_second == 40.0
    assert (r.p99_ms, r.max_ms) == (7.0, 99.0)  # median of 3, 50, 7; the largest maximum
    assert merged.cpu_seconds == {"gateway": 4.5}
    assert r.wrk_cpu_seconds == pytest.approx(0.3)

"""make bench: reading wrk's summary and the timed mode's per-thread files (benchmarks/http/wrk.py)."""

import pytest

from benchmarks.http import wrk

SUMMARY = """Running 5s test @ http://127.0.0.1:8080/v1/recognitions
  2 threads and 64 connections
Requests/sec:    812.40
@bench n2xx 4000
@bench n503 50
@bench n503_retry_after 49
@bench nother 12
@bench last_other_status 502
@bench requests 4062
@bench duration_us 5001000
@bench err_connect 0
@bench err_read 3
@bench err_write 0
@bench err_status 62
@bench err_timeout 2
@bench p50_us 41250
@bench p95_us 90000
@bench p99_us 120500
@bench max_us 250000
@bench mean_us 45000
"""


def test_summary_lines_become_a_result() -> None:
    r = wrk.parse_summary(SUMMARY)
    assert (r.requests, r.ok, r.overloaded, r.overloaded_retry_after, r.other_status) == (
        4062,
        4000,
        50,
        49,
        12,
    )
    assert r.last_other_status == 502
    assert r.socket_errors == {"connect": 0, "read": 3, "write": 0, "timeout": 2}
    assert (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms, r.mean_ms) == (41.25, 90.0, 120.5, 250.0, 45.0)
    assert r.seconds == pytest.approx(5.001)
    assert r.ok_per_second == pytest.approx(4000 / 5.001)
    # Every response that is not a 2xx, and every socket error, is an error.
    assert r.errors == 50 + 12 + 3 + 2


def test_a_run_whose_script_failed_is_an_error_not_zeros() -> None:
    with pytest.raises(ValueError, match="no summary"):
        wrk.parse_summary("PANIC: unprotected error in call to Lua API (attempt to index a nil value)")


def test_timed_files_give_status_and_milliseconds() -> None:
    files = ["201 1500\n503 250\n", "201 -1\ngarbage\n201 16000000\n"]
    assert wrk.parse_timed(files) == [(201, 1.5), (503, 0.25), (201, -1.0), (201, 16000.0)]


def test_lua_script_quotes_its_values() -> None:
    script = wrk.lua_script("POST", None, 'multipart/form-data; boundary="x"', None)
    assert (
        'local METHOD, BODY_PATH, CONTENT_TYPE, TIMED_DIR = "POST", nil, "multipart/form-data; boundary=\\"x\\"", nil'
        in script
    )
    # Python's %-formatting must leave Lua's own patterns intact.
    assert 'string.match(rid, "^b%d+%-%d+%-(%d+)$")' in script

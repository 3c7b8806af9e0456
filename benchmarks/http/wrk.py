"""wrk, the load generator: installing it, its Lua script, running it and reading its summary.

wrk (C, epoll, LuaJIT) needs a fraction of a core for thousands of requests per second, so on a
2-core machine it is not what limits the numbers; its own CPU time is reported beside each run
to show it. The Lua script posts the same multipart body a client sends, counts responses by
status in every wrk thread (2xx, 503 with and without Retry-After, anything else) and prints
its summary as ``@bench key value`` lines from ``done()``, so nothing depends on wrk's
human-readable output.

wrk's latency histogram mixes all responses. For the overload case, where fast 503s would hide
the latency of the answered requests, the script runs in *timed* mode: each request carries its
send time (CLOCK_MONOTONIC, through LuaJIT's FFI) in X-Request-ID, which the gateway echoes,
and ``response()`` appends "status latency_us" to a file per wrk thread. wrk's ``response()``
has no timing of its own and cannot tell which connection answered, hence the round trip
through the header.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts import apt

# Socket-level failures wrk counts besides HTTP statuses.
SOCKET_ERRORS = ("connect", "read", "write", "timeout")

_LUA = r"""
-- Written by benchmarks/http/wrk.py for one run; see there.
local METHOD, BODY_PATH, CONTENT_TYPE, TIMED_DIR = %(method)s, %(body_path)s, %(content_type)s, %(timed_dir)s

wrk.method = METHOD
if BODY_PATH then
  local f = assert(io.open(BODY_PATH, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = CONTENT_TYPE
end

local threads, created = {}, 0
function setup(thread)
  created = created + 1
  thread:set("id", created)
  table.insert(threads, thread)
end

-- Per-thread counters: plain numbers, the only values thread:get copies back safely.
n2xx, n503, n503_retry_after, nother, last_other = 0, 0, 0, 0, 0

local ffi, now_us, out, sent = nil, nil, nil, 0
function init(args)
  if TIMED_DIR then
    ffi = require("ffi")
    ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clock, bench_timespec *ts);
    ]]
    local ts = ffi.new("bench_timespec")
    now_us = function()
      ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
    end
    out = assert(io.open(TIMED_DIR .. "/thread-" .. id .. ".txt", "w"))
    out:setvbuf("full")
  end
end

if TIMED_DIR then
  function request()
    sent = sent + 1
    -- Unique per request (thread, sequence) and carrying its send time; the gateway echoes it.
    local headers = {["X-Request-ID"] = string.format("b%%d-%%d-%%d", id, sent, now_us())}
    for k, v in pairs(wrk.headers) do headers[k] = v end  -- format() takes these or wrk's, not both
    return wrk.format(nil, nil, headers, nil)
  end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    n2xx = n2xx + 1
  elseif status == 503 then
    n503 = n503 + 1
    if headers["retry-after"] or headers["Retry-After"] then n503_retry_after = n503_retry_after + 1 end
  else
    nother = nother + 1
    last_other = status
  end
  if out then
    local rid = headers["x-request-id"] or headers["X-Request-ID"] or ""
    local started = tonumber(string.match(rid, "^b%%d+%%-%%d+%%-(%%d+)$"))
    out:write(status, " ", started and (now_us() - started) or -1, "\n")
  end
end

function done(summary, latency, requests)
  local totals = {n2xx = 0, n503 = 0, n503_retry_after = 0, nother = 0}
  local last = 0
  for _, t in ipairs(threads) do
    for k, _ in pairs(totals) do totals[k] = totals[k] + t:get(k) end
    if t:get("last_other") ~= 0 then last = t:get("last_other") end
  end
  local function put(k, v) io.write("@bench ", k, " ", string.format("%%.0f", v), "\n") end
  for k, v in pairs(totals) do put(k, v) end
  put("last_other_status", last)
  put("requests", summary.requests)
  put("duration_us", summary.duration)
  for _, k in ipairs({"connect", "read", "write", "status", "timeout"}) do put("err_" .. k, summary.errors[k]) end
  for _, p in ipairs({50, 95, 99}) do put("p" .. p .. "_us", latency:percentile(p)) end
  put("max_us", latency.max)
  put("mean_us", latency.mean)
end
"""


def _lua_string(value: str | None) -> str:
    if value is None:
        return "nil"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(method: str, body_path: Path | None, content_type: str | None, timed_dir: Path | None) -> str:
    """The Lua for one run: ``body_path`` is posted as is, with ``content_type``."""
    return _LUA % {
        "method": _lua_string(method),
        "body_path": _lua_string(str(body_path) if body_path else None),
        "content_type": _lua_string(content_type),
        "timed_dir": _lua_string(str(timed_dir) if timed_dir else None),
    }


@dataclass
class WrkResult:
    """One wrk run. Latencies are over every response wrk recorded, whatever its status."""

    seconds: float
    requests: int  # responses received, any status
    ok: int  # 2xx
    overloaded: int  # 503
    overloaded_retry_after: int  # 503 carrying Retry-After
    other_status: int  # any other status (4xx, 5xx but 503)
    last_other_status: int
    socket_errors: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    wrk_cpu_seconds: float = 0.0
    # Timed mode only: (status, latency ms) per response; latency -1 when the id did not come back.
    timed: list[tuple[int, float]] = field(default_factory=list)
    output: str = ""

    @property
    def ok_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        """Everything that is not a 2xx: non-2xx statuses and socket errors (timeouts included)."""
        return self.overloaded + self.other_status + sum(self.socket_errors.values())


def combine(results: list[WrkResult]) -> WrkResult:
    """Stretches of one setting run at different moments, as one result: counts, time and CPU
    add up; latency percentiles are the median of the stretches' (Debian's wrk cannot hand its
    histogram to Lua, so exact merging is not possible), the maximum is the maximum."""
    if len(results) == 1:
        return results[0]
    requests = sum(r.requests for r in results)

    def median(key: str) -> float:
        return float(statistics.median(getattr(r, key) for r in results))

    return WrkResult(
        seconds=sum(r.seconds for r in results),
        requests=requests,
        ok=sum(r.ok for r in results),
        overloaded=sum(r.overloaded for r in results),
        overloaded_retry_after=sum(r.overloaded_retry_after for r in results),
        other_status=sum(r.other_status for r in results),
        last_other_status=next((r.last_other_status for r in reversed(results) if r.last_other_status), 0),
        socket_errors={k: sum(r.socket_errors[k] for r in results) for k in SOCKET_ERRORS},
        p50_ms=median("p50_ms"),
        p95_ms=median("p95_ms"),
        p99_ms=median("p99_ms"),
        max_ms=max(r.max_ms for r in results),
        mean_ms=sum(r.mean_ms * r.requests for r in results) / requests if requests else 0.0,
        wrk_cpu_seconds=sum(r.wrk_cpu_seconds for r in results),
        timed=[t for r in results for t in r.timed],
        output="\n".join(r.output for r in results),
    )


def parse_summary(output: str) -> WrkResult:
    """The ``@bench`` lines that the Lua ``done()`` prints, as a WrkResult."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "@bench":
            values[parts[1]] = float(parts[2])
    if "requests" not in values:
        raise ValueError(f"wrk printed no summary (did the Lua script fail?):\n{output[-2000:]}")

    def ms(key: str) -> float:
        return values[key] / 1000.0

    return WrkResult(
        seconds=values["duration_us"] / 1e6,
        requests=int(values["requests"]),
        ok=int(values["n2xx"]),
        overloaded=int(values["n503"]),
        overloaded_retry_after=int(values["n503_retry_after"]),
        other_status=int(values["nother"]),
        last_other_status=int(values["last_other_status"]),
        socket_errors={k: int(values[f"err_{k}"]) for k in SOCKET_ERRORS},
        p50_ms=ms("p50_us"), p95_ms=ms("p95_us"), p99_ms=ms("p99_us"), max_ms=ms("max_us"), mean_ms=ms("mean_us"),
        output=output,
    )  # fmt: skip


def parse_timed(texts: list[str]) -> list[tuple[int, float]]:
    """(status, latency ms) from the per-thread files of a timed run."""
    out = []
    for text in texts:
        for line in text.splitlines():
            status, _, micros = line.partition(" ")
            if status.isdigit():
                latency = float(micros)
                out.append((int(status), latency / 1000.0 if latency >= 0 else -1.0))
    return out


def ensure_wrk() -> str:
    """wrk's path, installing Debian's package first if it is missing."""
    return str(apt.binary("wrk", "wrk", say=lambda message: print(f"[wrk] {message}", file=sys.stderr, flush=True)))


def run(
    url: str,
    connections: int,
    seconds: float,
    work_dir: Path,
    *,
    body_path: Path | None = None,
    content_type: str | None = None,
    timeout: float = 30.0,
    timed: bool = False,
    wrk: str = "wrk",
) -> WrkResult:
    """``connections`` keep-alive connections for ``seconds``, each sending its next request as
    soon as the last is answered (closed loop). ``timeout`` is above the gateway's deadlines,
    so a slow answer is measured, not cut off."""
    work_dir.mkdir(parents=True, exist_ok=True)
    timed_dir = None
    if timed:
        timed_dir = work_dir / f"timed-{time.monotonic_ns()}"
        timed_dir.mkdir()
    script = work_dir / f"run-{time.monotonic_ns()}.lua"
    method = "POST" if body_path else "GET"
    script.write_text(lua_script(method, body_path, content_type, timed_dir))
    threads = 1 if connections < 2 else 2
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout:g}s", "-s", str(script), url]  # fmt: skip
    # wrk is the only child reaped during the run, so the children's rusage delta is its CPU.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + timeout + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"wrk exited with {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    result = parse_summary(done.stdout + done.stderr)
    result.wrk_cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if timed_dir is not None:
        result.timed = parse_timed([p.read_text() for p in sorted(timed_dir.glob("thread-*.txt"))])
    return result

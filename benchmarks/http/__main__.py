"""``make bench``: the digits stack against a seed-style app over HTTP, driven by wrk.

    make bench        # or: python -m benchmarks.http
    BENCH_SECONDS=5 BENCH_OVERLOAD_SECONDS=10 make bench     # a quicker pass

1. Preprocessing micro-benchmark: CPU per typical upload against the 1 ms target.
2. Starts one Cassandra node (normal JIT), the digits stack and the seed-style app
   (benchmarks/http/seed_app.py) on a free loopback address and free ports; checks each answers
   an upload; warms both up.
3. For each concurrency: the ceiling (the same gateway's GET /healthz), then digits and the
   seed-style app in turn for each upload, so both see the same machine (it is shared and
   noisy: the ratios of one run mean more than absolute numbers across runs); the whole sweep
   is repeated in rounds, each point's time split between them. wrk posts the
   same multipart upload a client sends. CPU of every process tree is measured per run.
4. One request stage by stage at concurrency 1, from the services' histograms.
5. Overload: concurrency 512 against digits: answered, 503s, latency of the answered, waits
   past the deadline, RSS of each service over time.

Everything is stopped at the end, on success or failure. Results: benchmarks/results/bench.md
and bench-*.png. Settings (environment): BENCH_SECONDS (per point, default 15), BENCH_ROUNDS
(stretches each point is split into, default 3), BENCH_WARMUP_SECONDS (per system, default 10),
BENCH_OVERLOAD_SECONDS (default 30), BENCH_CONCURRENCY (default 1,16,64,256),
BENCH_OVERLOAD_CONCURRENCY (default 512), BENCH_PAYLOADS (default seven,canvas).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.http import overload, payloads, plots, preprocessing, report, stages, systems, wrk
from benchmarks.http.procs import CpuMeter, wait_idle
from benchmarks.http.report import CEILING, DIGITS, SEED, Point

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "results"
UPLOAD_PATH = "/v1/recognitions"


@dataclass(frozen=True)
class Settings:
    seconds: float
    warmup_seconds: float
    overload_seconds: float
    concurrency: tuple[int, ...]
    overload_concurrency: int
    payloads: tuple[str, ...]
    rounds: int

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        return cls(
            float(env("BENCH_SECONDS", "15")),
            float(env("BENCH_WARMUP_SECONDS", "10")),
            float(env("BENCH_OVERLOAD_SECONDS", "30")),
            tuple(int(c) for c in env("BENCH_CONCURRENCY", "1,16,64,256").split(",")),
            int(env("BENCH_OVERLOAD_CONCURRENCY", "512")),
            tuple(env("BENCH_PAYLOADS", "seven,canvas").split(",")),
            int(env("BENCH_ROUNDS", "3")),
        )


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def probe(base_url: str, payload: payloads.Payload) -> str:
    """One upload, to check a system answers it and what it reads (not timed)."""
    body, content_type = payloads.multipart(payload)
    request = urllib.request.Request(
        base_url + UPLOAD_PATH, data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = json.load(reply)
            return f"{reply.status}: digit {answer['digit']} (confidence {answer['confidence']:.3f})"
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{base_url} refused {payload.name}: {exc.code} {exc.read()[:300]!r}") from None


def deadline_seconds() -> float:
    """The gateway's deadlines for one upload: Recognize then Record, as it is configured."""
    from services.gateway.config import Config

    config = Config.from_env()
    return config.recognize_timeout_seconds + config.record_timeout_seconds


class Runner:
    def __init__(self, running: systems.Systems, settings: Settings, wrk_path: str) -> None:
        self.systems = running
        self.settings = settings
        self.wrk = wrk_path
        self.work = running.work_dir / "wrk"
        self.work.mkdir(parents=True, exist_ok=True)
        self.cpu = CpuMeter(running.roots)
        self.bodies: dict[str, tuple[Path, str]] = {}
        for payload in payloads.for_load():
            if payload.name in settings.payloads:
                body, content_type = payloads.multipart(payload)
                path = self.work / f"body-{payload.name}.bin"
                path.write_bytes(body)
                self.bodies[payload.name] = (path, content_type)
        self.urls = {DIGITS: running.digits_url, SEED: running.seed_url}

    def load(self, system: str, payload: str | None, concurrency: int, seconds: float) -> Point:
        if system == CEILING:
            url, body, content_type = self.urls[DIGITS] + "/healthz", None, None
        else:
            url = self.urls[system] + UPLOAD_PATH
            body, content_type = self.bodies[payload]  # type: ignore[index]
        self.settle()
        self.cpu.start()
        result = wrk.run(url, concurrency, seconds, self.work, body_path=body, content_type=content_type,
                         wrk=self.wrk)  # fmt: skip
        cpu = self.cpu.stop()
        point = Point(system, payload or "GET /healthz", concurrency, result, cpu)
        say(f"c={concurrency:<3} {system:>10} {point.payload:>12}: {result.ok_per_second:8,.0f} req/s  "
            f"p50 {result.p50_ms:7.1f}  p99 {result.p99_ms:7.1f} ms  errors {report.errors_cell(result)}")  # fmt: skip
        return point

    def settle(self) -> None:
        """Until the services (not Cassandra, which always has background work) are idle."""
        wait_idle({k: v for k, v in self.systems.roots().items() if k != "cassandra"})

    def warm_up(self) -> None:
        each = self.settings.warmup_seconds / len(self.bodies)
        for system in (DIGITS, SEED):
            for payload in self.bodies:
                say(f"warm-up: {system}, {payload}, {each:.0f} s at concurrency 16")
                self.load(system, payload, 16, each)
        self.load(CEILING, None, 16, 2)

    def sweep(self) -> list[Point]:
        """Every point in ``rounds`` stretches spread over the whole sweep, so that a noisy minute
        on the shared machine touches every point a little rather than one point a lot."""
        s = self.settings
        stretch = max(1, round(s.seconds / s.rounds))  # wrk takes whole seconds
        runs: dict[tuple[str, str | None, int], list[Point]] = {}
        for round_ in range(s.rounds):
            say(f"round {round_ + 1} of {s.rounds}, {stretch} s per run")
            # Who goes first alternates, so neither system always runs right after the other's load.
            order = (DIGITS, SEED) if round_ % 2 == 0 else (SEED, DIGITS)
            for c in s.concurrency:
                runs.setdefault((CEILING, None, c), []).append(self.load(CEILING, None, c, stretch))
                for payload in self.bodies:
                    for system in order:
                        runs.setdefault((system, payload, c), []).append(
                            self.load(system, payload, c, stretch)
                        )
        return [report.merge(points) for points in runs.values()]

    def stage_breakdown(self) -> tuple[list[stages.Stage], Point]:
        urls = self.systems.metrics_urls()
        self.settle()  # the last requests of the previous run must not land in the delta
        before = {name: stages.scrape(url) for name, url in urls.items()}
        point = self.load(DIGITS, next(iter(self.bodies)), 1, self.settings.seconds)
        self.settle()  # the request in flight when wrk stopped is counted; one in hundreds
        after = {name: stages.scrape(url) for name, url in urls.items()}
        d = {name: stages.delta(before[name], after[name]) for name in urls}
        floors = {name: stages.grpc_floor_ms(address) for name, address in self.systems.grpc_addresses().items()}
        return stages.breakdown(point.result.mean_ms, d["gateway"], d["recognizer"], d["recorder"], floors), point

    def overload_case(self) -> overload.OverloadResult:
        body, content_type = next(iter(self.bodies.values()))
        roots = {k: v for k, v in self.systems.roots().items() if k != "seed"}
        c, seconds = self.settings.overload_concurrency, self.settings.overload_seconds
        say(f"overload: concurrency {c} for {seconds:g} s")
        return overload.run(self.urls[DIGITS] + UPLOAD_PATH, body, content_type, c, seconds, deadline_seconds(),
                            self.work, roots, self.wrk)  # fmt: skip


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def header(settings: Settings, load_average: tuple[float, float, float], cassandra_cpus: frozenset[int] | None) -> str:
    dirty = _git("status", "--porcelain", "--", "services", "digits", "scripts", "benchmarks/http")
    env = " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ) if k.startswith("BENCH_"))
    return "\n".join([
        "# HTTP benchmark: digits against a seed-style app",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; commit `{_git('rev-parse', '--short', 'HEAD')}`"
        + (" with uncommitted changes in services/ digits/ scripts/ or benchmarks/http" if dirty else ""),
        f"- machine: {os.cpu_count()} CPU cores, shared with whatever else runs (load average at start "
        f"{load_average[0]:.1f}); client, services and Cassandra all on it, over loopback; "
        + (f"Cassandra confined to CPU {','.join(map(str, sorted(cassandra_cpus)))} once up, as `make run` does "
           "(`DIGITS_CASSANDRA_CPUS`, scripts/devstack.py)" if cassandra_cpus else "Cassandra on any core"),
        f"- command: `{(env + ' ') if env else ''}make bench`; {settings.seconds:g} s per point in "
        f"{settings.rounds} rounds, warm-up {settings.warmup_seconds:g} s per system, "
        f"overload {settings.overload_seconds:g} s",
    ])  # fmt: skip


def write_report(settings: Settings, load_average: tuple[float, float, float], cassandra_cpus: frozenset[int] | None,
                 probes: list[str],
                 pre: list[preprocessing.PreprocessPoint], points: list[Point], stage_rows: list[stages.Stage],
                 stage_point: Point, over: overload.OverloadResult) -> str:  # fmt: skip
    c = settings.overload_concurrency
    text = "\n".join([
        header(settings, load_average, cassandra_cpus),
        "",
        "## Preprocessing: CPU per upload (`services.recognizer.segment.read`, what the recognizer runs per image)",
        "",
        preprocessing.table(pre),
        "",
        "## Throughput: digits ÷ seed-style and digits ÷ ceiling",
        "",
        "The seed-style app (benchmarks/http/seed_app.py) is one Flask process on Flask's threaded server: "
        "upload saved to a file, grayscale + resize to 28×28, the same committed model called once per request "
        "(TensorFlow SavedModel, no batching), one synchronous LOCAL_QUORUM insert into its own RF 1 table on "
        "the same Cassandra node. digits runs as `make run` runs it, with its default settings. For each "
        "concurrency the ceiling, digits and the seed-style app run one after the other (interleaved, who "
        "goes first alternating), in rounds spread over the sweep, all after a warm-up.",
        "",
        "The ceiling is the same gateway's `GET /healthz`: what its HTTP layer alone can do. Requests/s count "
        "2xx answers. What each system answered before the runs: " + "; ".join(probes) + ".",
        "",
        report.ratio_table(points),
        "",
        "![throughput](bench-throughput.png)",
        "",
        "## Every run",
        "",
        "Latency percentiles are wrk's, over all responses, the median of the rounds' (max: the largest); "
        "errors are every non-2xx and socket error.",
        "",
        report.load_table(points),
        "",
        "![latency](bench-latency.png)",
        "",
        "## CPU ms per request, by process tree",
        "",
        "utime + stime from /proc over each run, divided by the responses of the run. `wrk` is the load "
        "generator's own CPU (not part of the total).",
        "",
        report.cpu_table(points),
        "",
        f"## One upload stage by stage (concurrency 1, {stage_point.result.requests:,} requests, "
        f"upload `{stage_point.payload}`)",
        "",
        report.stage_table(stage_rows),
        "",
        f"## Overload: concurrency {c} for {settings.overload_seconds:g} s against digits",
        "",
        "wrk sends a refused request again at once, ignoring Retry-After: a worse crowd than real clients. "
        "Latencies here are per request and per status (timed through X-Request-ID, see wrk.py).",
        "",
        overload.summary_table(over),
        "",
        overload.rss_table(over),
        "",
        "![rss](bench-rss.png)",
        "",
    ])  # fmt: skip
    return text


def main() -> int:
    settings = Settings.from_env()
    load_average = os.getloadavg()
    wrk_path = wrk.ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say("preprocessing micro-benchmark")
    pre = preprocessing.run()
    running = systems.start(say)
    try:
        runner = Runner(running, settings, wrk_path)
        probes = []
        for name in runner.bodies:
            payload = next(p for p in payloads.for_load() if p.name == name)
            for system in (DIGITS, SEED):
                probes.append(f"{system} `{name}` → {probe(runner.urls[system], payload)}")
                say(probes[-1])
        runner.warm_up()
        points = runner.sweep()
        say("stage breakdown at concurrency 1")
        stage_rows, stage_point = runner.stage_breakdown()
        over = runner.overload_case()
    except BaseException:
        say(f"failed; the seed-style app's log ends:\n{systems.seed_log_tail(running)}")
        raise
    finally:
        say("stopping everything")
        systems.stop(running)
    text = write_report(settings, load_average, running.stack.config.cassandra_cpus, probes, pre, points, stage_rows,
                        stage_point, over)
    text += f"\nTook {time.monotonic() - started:.0f} s in all.\n"
    (OUT / "bench.md").write_text(text)
    plots.throughput(points, OUT / "bench-throughput.png", "throughput")
    plots.latency(points, OUT / "bench-latency.png", "latency")
    plots.rss(over, OUT / "bench-rss.png")
    print(text)
    say(f"wrote {OUT / 'bench.md'} and bench-throughput.png, bench-latency.png, bench-rss.png beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

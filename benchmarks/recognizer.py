"""Recognizer throughput: the raw model, and the service with dynamic batching on and off.

    make bench-recognizer        # or: python -m benchmarks.recognizer [--seconds 6 --rounds 3]

(a) The model alone: ``DigitModel.predict`` (the SavedModel's traced ``serve``) at batch
    1, 32 and 256, in this process.
(b) The service through real gRPC on loopback: two recognizers as subprocesses on free ports,
    one with batching on (the defaults) and one with ``RECOGNIZER_BATCHING=off``, driven by a
    grpc.aio load generator at concurrency 1, 8 and 64. Each point is measured in short
    stretches (rounds) that alternate between the two servers, so that both see the same
    machine: on a shared machine compare the columns of one run, not numbers across runs.
    The client shares the CPU with the server, as it would on a busy node; its cost is in
    every number.

Uploads are MNIST test digits as PNG files, dark ink on white like a scan, so every request
pays for decoding and normalisation too. Tables are printed as markdown and written, with a
plot, to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from digits.v1 import recognizer_pb2, recognizer_pb2_grpc
from scripts.devstack import free_port
from scripts.waiting import grpc_serving, wait_until
from services.recognizer import mnist
from services.recognizer.config import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
MODEL_BATCHES = (1, 32, 256)
CONCURRENCY = (1, 8, 64)
MODES = {"on": "true", "off": "false"}


def uploads(mnist_dir: Path, count: int) -> list[bytes]:
    """``count`` MNIST test digits as PNG uploads (dark ink on white)."""
    import io

    from PIL import Image

    images = mnist.load_images(mnist_dir / mnist.FILES["test_images"])[:count]
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(255 - image).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


# --- (a) the model alone -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPoint:
    batch: int
    ms_per_batch: float  # median
    images_per_second: float


def bench_model(model_dir: str, mnist_dir: Path, seconds: float) -> tuple[str, list[ModelPoint]]:
    from services.recognizer.model import DigitModel

    model = DigitModel(model_dir)
    x = mnist.to_model_input(mnist.load_images(mnist_dir / mnist.FILES["test_images"])[: max(MODEL_BATCHES)])
    points = []
    for batch in MODEL_BATCHES:
        inputs = x[:batch]
        for _ in range(3):  # warm-up: tracing for a new shape, allocator
            model.predict(inputs)
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            model.predict(inputs)
            times.append(time.perf_counter() - start)
        points.append(ModelPoint(batch, statistics.median(times) * 1e3, batch * len(times) / sum(times)))
    return model.version, points


# --- (b) the service -----------------------------------------------------------------------


@dataclass
class Server:
    mode: str
    address: str
    metrics_url: str
    process: subprocess.Popen


def start_server(mode: str, log_path: Path) -> Server:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "RECOGNIZER_HOST": "127.0.0.1",
        "RECOGNIZER_PORT": str(port),
        "RECOGNIZER_METRICS_PORT": str(metrics_port),
        "RECOGNIZER_BATCHING": MODES[mode],
        "RECOGNIZER_LOG_LEVEL": "warning",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = open(log_path, "wb")  # closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "services.recognizer"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return Server(mode, f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process)


def wait_serving(server: Server, timeout: float = 180) -> None:
    with grpc_serving(server.address, "digits.v1.Recognizer") as serving:
        wait_until(serving, timeout, f"recognizer ({server.mode})",
                   lambda: None if server.process.poll() is None else f"exited with {server.process.returncode}")  # fmt: skip


def batch_counts(server: Server) -> tuple[float, float]:
    """(model calls, images) so far, from the server's batch-size histogram."""
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "digits_recognizer_batch_size":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
    return count, total


@dataclass
class Sample:
    """What one stretch of load produced; several stretches of one setting add up."""

    latencies: list[float]
    seconds: float
    model_calls: float
    images: float
    errors: int

    def __add__(self, other: "Sample") -> "Sample":
        return Sample(
            self.latencies + other.latencies, self.seconds + other.seconds,
            self.model_calls + other.model_calls, self.images + other.images, self.errors + other.errors,
        )  # fmt: skip


@dataclass(frozen=True)
class LoadPoint:
    mode: str
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    errors: int


async def drive(
    server: Server, images: list[bytes], concurrency: int, seconds: float, warmup: float
) -> Sample:
    """``concurrency`` callers, each sending its next Recognize as soon as the last returns."""
    requests = [recognizer_pb2.RecognizeRequest(image=image, content_type="image/png") for image in images]
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = recognizer_pb2_grpc.RecognizerStub(channel)
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + seconds
        before: tuple[float, float] | None = None

        async def caller(k: int) -> None:
            nonlocal errors
            i = k
            while (now := time.perf_counter()) < stop_at:
                try:
                    await stub.Recognize(requests[i % len(requests)], timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                done = time.perf_counter()
                if now >= measure_from:
                    latencies.append(done - now)
                i += concurrency

        async def mark() -> None:
            nonlocal before
            await asyncio.sleep(warmup)
            before = await asyncio.to_thread(batch_counts, server)

        await asyncio.gather(mark(), *(caller(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    after = batch_counts(server)
    assert before is not None
    return Sample(latencies, elapsed, after[0] - before[0], after[1] - before[1], errors)


def summarise(mode: str, concurrency: int, sample: Sample) -> LoadPoint:
    p50, p99 = np.percentile(np.array(sample.latencies) * 1e3, [50, 99])
    return LoadPoint(
        mode, concurrency, len(sample.latencies) / sample.seconds, float(p50), float(p99),
        sample.images / sample.model_calls if sample.model_calls else float("nan"), sample.errors,
    )  # fmt: skip


async def drive_batch_rpc(server: Server, images: list[bytes], seconds: float) -> tuple[float, float]:
    """(images/s, ms per call) for back-to-back RecognizeBatch calls of all ``images``."""
    request = recognizer_pb2.RecognizeBatchRequest(images=images)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = recognizer_pb2_grpc.RecognizerStub(channel)
        await stub.RecognizeBatch(request, timeout=60)  # warm-up
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 3:
            start = time.perf_counter()
            await stub.RecognizeBatch(request, timeout=60)
            times.append(time.perf_counter() - start)
    return len(images) * len(times) / sum(times), statistics.median(times) * 1e3


async def bench_service(
    images: list[bytes], seconds: float, warmup: float, rounds: int
) -> tuple[list[LoadPoint], tuple[float, float]]:
    OUT.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        servers = {mode: start_server(mode, OUT / f"recognizer-{mode}.log") for mode in MODES}
        for server in servers.values():
            stack.callback(stop_server, server)
        await asyncio.gather(*(asyncio.to_thread(wait_serving, server) for server in servers.values()))
        # Short stretches, alternating between the two servers and repeated in rounds, so that
        # both see the same machine even when other work on it comes and goes.
        samples: dict[tuple[str, int], Sample] = {}
        for round_ in range(rounds):
            for concurrency in CONCURRENCY:
                for mode in MODES:
                    sample = await drive(servers[mode], images, concurrency, seconds / rounds, warmup)
                    key = (mode, concurrency)
                    samples[key] = samples[key] + sample if key in samples else sample
                    rps = len(sample.latencies) / sample.seconds
                    print(f"  round {round_ + 1} batching {mode:>3} c={concurrency:<3} {rps:7.0f} req/s",
                          file=sys.stderr)  # fmt: skip
        points = [summarise(mode, c, samples[(mode, c)]) for c in CONCURRENCY for mode in MODES]
        batch_rpc = await drive_batch_rpc(servers["on"], images, min(seconds, 3.0))
    return points, batch_rpc


def stop_server(server: Server) -> None:
    server.process.terminate()  # SIGTERM: the graceful path
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


# --- report ------------------------------------------------------------------------------


def model_table(points: list[ModelPoint]) -> str:
    rows = ["| batch | ms per batch (median) | images/s |", "|---:|---:|---:|"]
    rows += [f"| {p.batch} | {p.ms_per_batch:.2f} | {p.images_per_second:,.0f} |" for p in points]
    return "\n".join(rows)


def service_table(points: list[LoadPoint]) -> str:
    by = {(p.mode, p.concurrency): p for p in points}
    rows = [
        "| concurrency | batching | requests/s | p50 ms | p99 ms | images per model call | errors |"
        " requests/s on ÷ off |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCY:
        on, off = by[("on", c)], by[("off", c)]
        for p in (on, off):
            ratio = f"{on.requests_per_second / off.requests_per_second:.2f}×" if p is on else ""
            rows.append(
                f"| {c} | {p.mode} | {p.requests_per_second:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
                f"| {p.mean_batch:.1f} | {p.errors} | {ratio} |"
            )
    return "\n".join(rows)


def plot(model: list[ModelPoint], service: list[LoadPoint], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_model, ax_rps, ax_p99) = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_model.plot([p.batch for p in model], [p.images_per_second for p in model], "o-")
    ax_model.set(xscale="log", xlabel="batch size", ylabel="images/s", title="model alone (serve)")
    ax_model.set_xticks([p.batch for p in model], [str(p.batch) for p in model])
    for mode, style in (("on", "o-"), ("off", "s--")):
        pts = [p for p in service if p.mode == mode]
        xs = [p.concurrency for p in pts]
        ax_rps.plot(xs, [p.requests_per_second for p in pts], style, label=f"batching {mode}")
        ax_p99.plot(xs, [p.p99_ms for p in pts], style, label=f"batching {mode} p99")
        ax_p99.plot(xs, [p.p50_ms for p in pts], style, alpha=0.4, label=f"batching {mode} p50")
    ax_rps.set(xscale="log", xlabel="concurrent callers", ylabel="requests/s", title="service over gRPC")
    ax_p99.set(xscale="log", yscale="log", xlabel="concurrent callers", ylabel="latency (ms)",
               title="service latency")  # fmt: skip
    for ax in (ax_rps, ax_p99):
        ax.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
        ax.legend()
    for ax in (ax_model, ax_rps, ax_p99):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_mnist = Path(os.environ.get("MNIST", ROOT.parent / "shared" / "mnist"))
    p.add_argument("--mnist", type=Path, default=default_mnist,
                   help="directory with the MNIST .gz files (default $MNIST or ../shared/mnist)")  # fmt: skip
    p.add_argument("--model", default=DEFAULT_MODEL_DIR, help="model directory for part (a)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured time per point, over all rounds")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured time before each stretch")
    p.add_argument("--rounds", type=int, default=3, help="alternating stretches per point")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    images = uploads(args.mnist, 256)
    print("(a) model alone ...", file=sys.stderr)
    version, model_points = bench_model(args.model, args.mnist, min(args.seconds, 2.0))
    print("(b) service, batching on and off ...", file=sys.stderr)
    service_points, (batch_rps, batch_ms) = asyncio.run(
        bench_service(images, args.seconds, args.warmup, args.rounds)
    )

    report = "\n".join([
        f"## Recognizer benchmark (model `{version}`, {os.cpu_count()} CPU cores, shared machine)",
        "",
        "### (a) Model alone: `serve` at a fixed batch size",
        "",
        model_table(model_points),
        "",
        f"### (b) Service: `Recognize` over gRPC on loopback, {args.seconds:g} s per point "
        f"in {args.rounds} alternating rounds",
        "",
        service_table(service_points),
        "",
        f"`RecognizeBatch` with {len(images)} images per call, one caller, batching on: "
        f"{batch_rps:,.0f} images/s ({batch_ms:.0f} ms per call).",
        "",
        f"Command: `make bench-recognizer` "
        f"(python -m benchmarks.recognizer --seconds {args.seconds:g} --rounds {args.rounds}).",
    ])  # fmt: skip
    print(report)
    (OUT / "recognizer.md").write_text(report + "\n")
    plot(model_points, service_points, OUT / "recognizer.png")
    print(f"\nwrote {OUT / 'recognizer.md'} and {OUT / 'recognizer.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

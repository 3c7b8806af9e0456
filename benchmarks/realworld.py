"""Accuracy on realistic uploads, measured through the public HTTP API of a real stack.

    python -m benchmarks.realworld --mnist ../shared/mnist        (make eval-realworld)

Starts Cassandra and the three services with scripts.devstack on their own address, ports and
run directory (so neither a `make run` stack nor a test run is touched), posts every upload
from benchmarks.evalsets to POST /v1/recognitions, and prints accuracy per set; a bar chart
goes to benchmarks/results/realworld.png and the numbers to benchmarks/results/realworld.json. It also
reports, in process, the model's accuracy on the raw MNIST test tensors against the same digits
encoded as PNG and preprocessed, which is what preprocessing alone costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import evalsets  # noqa: E402
from scripts.devstack import Stack, StackConfig  # noqa: E402
from services.recognizer import mnist  # noqa: E402
from tests.helpers import encode  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
# Its own loopback address and JMX port: `make run` uses 127.0.0.1/7199, the tests 127.0.0.11/7211
# and 127.0.0.21-23.
CASSANDRA_HOST = "127.0.0.51"
CASSANDRA_JMX_PORT = 7251
TARGETS = {"transformed MNIST": 0.98, "printed": 0.90}


@dataclass
class Tally:
    """Outcomes per set: correct, wrong (recognised as another digit) or refused (a 4xx)."""

    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wrong: list[str] = field(default_factory=list)  # one line per misread or refused upload

    def add(self, upload: evalsets.Upload, digit: int | None, refusal: str | None) -> None:
        for key in {upload.set, _family(upload.set)}:
            self.total[key] += 1
            self.correct[key] += digit == upload.label
            self.refused[key] += refusal is not None
        if digit != upload.label:
            outcome = f"refused ({refusal})" if refusal else f"read as {digit}"
            self.wrong.append(f"{upload.set}/{upload.variant} {upload.filename}: {upload.label} {outcome}")

    def accuracy(self, key: str) -> float:
        return self.correct[key] / self.total[key] if self.total[key] else float("nan")


def _family(set_name: str) -> str:
    return "transformed MNIST" if set_name in evalsets.MNIST_SETS else set_name


def recognise_all(base_url: str, uploads: Iterable[evalsets.Upload], concurrency: int = 4) -> Tally:
    """Post every upload; a refused upload counts as an error, a 5xx aborts (the stack is broken)."""
    tally = Tally()
    with httpx.Client(base_url=base_url, timeout=60) as client:

        def post(upload: evalsets.Upload) -> tuple[evalsets.Upload, int | None, str | None]:
            reply = client.post(
                "/v1/recognitions",
                files={"image": (upload.filename, upload.data, upload.content_type)},
            )
            if reply.status_code == 201:
                return upload, int(reply.json()["digit"]), None
            if 400 <= reply.status_code < 500:
                return upload, None, f"{reply.status_code} {reply.json().get('type')}"
            raise RuntimeError(f"{upload.filename}: HTTP {reply.status_code} {reply.text[:200]}")

        with ThreadPoolExecutor(concurrency) as pool:
            for upload, digit, refusal in pool.map(post, uploads):
                tally.add(upload, digit, refusal)
    return tally


def preprocessing_cost(mnist_dir: Path, model_dir: Path) -> dict[str, float]:
    """Accuracy on the 10,000 raw test tensors vs the same digits as PNG through preprocessing."""
    from services.recognizer import evaluate, preprocess

    data = mnist.load(mnist_dir)
    model = evaluate.load(model_dir)
    raw = evaluate.predict(model, data.x_test)
    fields = np.stack([preprocess.to_mnist(encode(image)) for image in data.x_test])
    # predict() takes MNIST's uint8 images; the fields are already floats in [0, 1].
    through = np.concatenate(
        [np.argmax(model.predict(fields[i : i + 1000, ..., None])[:, :10], axis=1) for i in range(0, len(fields), 1000)]
    )
    return {
        "raw_tensors": float(np.mean(raw == data.y_test)),
        "png_preprocessed": float(np.mean(through == data.y_test)),
    }


def table(tally: Tally) -> list[tuple[str, int, float, int]]:
    """(set, uploads, accuracy, refused) for each set, then each family."""
    keys = [*(s for s in (*evalsets.MNIST_SETS, evalsets.PRINTED_SET) if tally.total[s])]
    keys += [k for k in TARGETS if k not in keys and tally.total[k]]
    return [(k, tally.total[k], tally.accuracy(k), tally.refused[k]) for k in keys]


def plot(rows: list[tuple[str, int, float, int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0] for r in rows]
    values = [100 * r[2] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = ax.bar(names, values, color=["#4c72b0" if n not in TARGETS else "#dd8452" for n in names])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
    for name, target in TARGETS.items():
        ax.axhline(100 * target, linestyle="--", linewidth=0.8, color="gray")
        # Labelled outside the axes, right of the bars, so no bar hides it.
        ax.annotate(f"{name}\n≥ {100 * target:.0f}%", (1.01, 100 * target), xycoords=("axes fraction", "data"),
                    ha="left", va="center", fontsize=7, color="gray")  # fmt: skip
    ax.set_ylim(min(80.0, min(values) - 2), 100.5)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@contextmanager
def eval_stack(run_dir: Path) -> Iterator[str]:
    """A whole stack of its own for an evaluation (see the module docstring); yields its URL."""
    config = StackConfig.on_free_ports(
        run_dir=run_dir,
        cassandra_hosts=(CASSANDRA_HOST,),
        cassandra_jmx_port_base=CASSANDRA_JMX_PORT,
        keyspace="digits_eval",
    )
    stack = Stack(config)
    try:
        stack.start()
        yield config.gateway_url
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "mnist", help="MNIST IDX directory")
    parser.add_argument("--count", type=int, default=1000, help="transformed MNIST test digits to upload")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=ROOT / "services" / "recognizer" / "model")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run" / "eval-realworld")
    args = parser.parse_args()

    data = mnist.load(args.mnist)
    started = time.monotonic()
    uploads = evalsets.all_sets(data.x_test, data.y_test, args.count, args.seed)
    print(f"generated {len(uploads)} uploads in {time.monotonic() - started:.0f} s", flush=True)

    with eval_stack(args.run_dir) as url:
        started = time.monotonic()
        tally = recognise_all(url, uploads)
        seconds = time.monotonic() - started

    cost = preprocessing_cost(args.mnist, args.model)
    model_version = json.loads((args.model / "model.json").read_text())["version"]
    rows = table(tally)
    print(f"\nmodel {model_version}; {len(uploads)} uploads through POST /v1/recognitions in {seconds:.0f} s\n")
    print("| set | uploads | accuracy | refused |\n|---|---:|---:|---:|")
    for name, total, accuracy, refused in rows:
        print(f"| {name} | {total} | {100 * accuracy:.1f}% | {refused} |")
    print(
        f"\nMNIST test set, 10,000 digits, in process: raw tensors {100 * cost['raw_tensors']:.2f}%, "
        f"as PNG through preprocessing {100 * cost['png_preprocessed']:.2f}%"
    )
    for line in tally.wrong:
        print("  ", line)

    OUT.mkdir(parents=True, exist_ok=True)
    plot(rows, OUT / "realworld.png", f"accuracy through the HTTP API (model {model_version}, seed {args.seed})")
    (OUT / "realworld.json").write_text(
        json.dumps(
            {
                "model_version": model_version,
                "seed": args.seed,
                "sets": {name: {"uploads": n, "accuracy": a, "refused": r} for name, n, a, r in rows},
                "mnist_test": cost,
                "wrong": tally.wrong,
            },
            indent=2,
        )
    )
    print(f"\nwrote {OUT / 'realworld.png'} and {OUT / 'realworld.json'}")
    missed = [name for name, target in TARGETS.items() if tally.accuracy(name) < target]
    if missed:
        print(f"below target: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

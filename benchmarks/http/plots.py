"""PNG plots: throughput and latency percentiles against concurrency, and RSS under overload."""

from __future__ import annotations

from pathlib import Path

from benchmarks.http.overload import MB, OverloadResult
from benchmarks.http.report import CEILING, DIGITS, SEED, Point

_STYLE = {DIGITS: "-", SEED: "--", CEILING: ":"}
_COLOUR = {DIGITS: "tab:blue", SEED: "tab:orange", CEILING: "grey"}
_MARK = {"seven": "o", "canvas": "s"}


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(points: list[Point], system: str, payload: str | None) -> list[Point]:
    return sorted((p for p in points if p.system == system and (payload is None or p.payload == payload)),
                  key=lambda p: p.concurrency)  # fmt: skip


def _concurrency_axis(ax, points: list[Point]) -> None:  # type: ignore[no-untyped-def]
    xs = sorted({p.concurrency for p in points})
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("concurrent connections")
    ax.grid(True, which="both", alpha=0.3)


def throughput(points: list[Point], path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    payloads = list(dict.fromkeys(p.payload for p in points if p.system != CEILING))
    for system in (DIGITS, SEED):
        for payload in payloads:
            series = _series(points, system, payload)
            if series:
                ax.plot([p.concurrency for p in series], [p.result.ok_per_second for p in series], _STYLE[system],
                        color=_COLOUR[system], marker=_MARK.get(payload, "^"), label=f"{system}, {payload}")  # fmt: skip
    ceiling = _series(points, CEILING, None)
    if ceiling:
        ax.plot([p.concurrency for p in ceiling], [p.result.ok_per_second for p in ceiling], _STYLE[CEILING],
                marker="x", color=_COLOUR[CEILING], label="ceiling: gateway GET /healthz")  # fmt: skip
    _concurrency_axis(ax, points)
    ax.set_yscale("log")
    ax.set_ylabel("requests/s answered 2xx (log)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency(points: list[Point], path: Path, title: str) -> None:
    plt = _pyplot()
    payloads = list(dict.fromkeys(p.payload for p in points if p.system != CEILING))
    fig, axes = plt.subplots(1, len(payloads), figsize=(6.5 * len(payloads), 4.5), squeeze=False, sharey=True)
    for ax, payload in zip(axes[0], payloads, strict=True):
        for system in (DIGITS, SEED):
            series, colour = _series(points, system, payload), _COLOUR[system]
            xs = [p.concurrency for p in series]
            for q, marker, alpha in (("p50", "o", 1.0), ("p95", "s", 0.7), ("p99", "^", 0.5)):
                ax.plot(xs, [getattr(p.result, f"{q}_ms") for p in series], _STYLE[system], marker=marker,
                        color=colour, alpha=alpha, label=f"{system} {q}")  # fmt: skip
        _concurrency_axis(ax, points)
        ax.set_yscale("log")
        ax.set_ylabel("latency, ms (log)")
        ax.set_title(f"{title}: {payload}")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rss(overload: OverloadResult, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    samples = overload.rss.samples
    for name in samples[0][1] if samples else []:
        ax.plot([t for t, _ in samples], [s[name] / MB for _, s in samples], label=name)
    ax.set_xlabel("seconds into the overload case")
    ax.set_yscale("log")  # Cassandra is ten times the size of the services
    ax.set_ylabel("RSS of the process tree, MB (log)")
    ax.set_title(f"RSS at concurrency {overload.concurrency}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

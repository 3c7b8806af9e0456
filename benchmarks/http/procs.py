"""CPU time and resident memory of process trees, from /proc.

A service is its process and every descendant (a gateway with several workers, the recognizer's
threads are inside its process already). CPU is utime + stime of each live process; RSS is the
sum of VmRSS over the tree, which counts pages shared between forked workers more than once
(an upper bound, which is what matters for "does it grow").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: split after its last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            found.setdefault(parent, []).append(int(entry.name))
    return found


def tree(root: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """``root`` and all its live descendants."""
    kids = children() if kids is None else kids
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += kids.get(pid, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class CpuMeter:
    """CPU seconds each named process tree used between ``start()`` and ``stop()``."""

    def __init__(self, roots: Callable[[], dict[str, int]]) -> None:
        self._roots = roots
        self._before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        kids = children()
        return {name: cpu_seconds(tree(pid, kids)) for name, pid in self._roots().items()}

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, float]:
        after = self._now()
        return {name: after[name] - self._before.get(name, 0.0) for name in after}


@dataclass
class RssTrace:
    """RSS of each service sampled over time: (seconds since start, {name: bytes})."""

    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    def peak(self, name: str) -> int:
        return max((s[name] for _, s in self.samples), default=0)

    def at(self, fraction: float, name: str) -> int:
        """The sample nearest to ``fraction`` (0 start, 0.5 middle, 1 end) of the trace."""
        if not self.samples:
            return 0
        return self.samples[min(len(self.samples) - 1, round(fraction * (len(self.samples) - 1)))][1][name]


class RssSampler:
    """Samples the RSS of each named process tree every ``interval`` seconds, in a thread."""

    def __init__(self, roots: dict[str, int], interval: float = 0.5) -> None:
        self.roots = roots
        self.interval = interval
        self.trace = RssTrace()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        while True:
            kids = children()
            sample = {name: rss_bytes(tree(pid, kids)) for name, pid in self.roots.items()}
            self.trace.samples.append((time.monotonic() - began, sample))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_idle(roots: dict[str, int], window: float = 0.25, busy: float = 0.1, timeout: float = 15.0) -> float:
    """Wait until the process trees together use under ``busy`` of a core for two windows in a
    row, and return how long that took. A run's last requests are still being handled when
    wrk exits (it closes its connections, the servers finish the work); without this, that work
    would be charged to the next run, maybe of the other system."""
    began = time.monotonic()
    quiet = 0
    last = sum(cpu_seconds(tree(pid)) for pid in roots.values())
    while quiet < 2 and time.monotonic() - began < timeout:
        time.sleep(window)
        now = sum(cpu_seconds(tree(pid)) for pid in roots.values())
        quiet = quiet + 1 if now - last < busy * window else 0
        last = now
    return time.monotonic() - began

"""Finding, launching and signalling node JVMs through /proc (Linux only, like the rest)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Collection
from pathlib import Path

from scripts.cassandra.config import DAEMON_CLASS


def is_node_process(pid: int, marker: str) -> bool:
    """A live process (zombies count as dead) whose command line contains ``marker``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return DAEMON_CLASS.encode() in cmdline and f"-Dcassandra.config={marker}".encode() in cmdline


def find_pid(pid_file: Path, marker: str) -> int | None:
    """The live JVM whose ``-Dcassandra.config`` is ``marker``, or None.

    The pid file is only a hint: the process must also be a live (not zombie) JVM whose
    command line names this node's config, so a recycled pid is never mistaken for the
    node, and a JVM whose pid file went missing is still found (by scanning /proc).
    """
    try:
        pid = int(pid_file.read_text().strip())
        if is_node_process(pid, marker):
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_node_process(int(entry.name), marker):
            return int(entry.name)
    return None


def launch(command: list[str], cwd: Path, stdout_file: Path) -> subprocess.Popen[bytes]:
    with open(stdout_file, "ab") as out:  # the child keeps its own copy of the descriptor
        # A session of its own: the JVM outlives this process and is not hit by a Ctrl-C
        # meant for the caller; stopping signals the whole process group.
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def confine(pid: int, cpus: Collection[int]) -> int:
    """Confine every thread of ``pid`` to ``cpus``; the threads it starts later inherit that.
    Returns how many threads were moved. Lists the threads again until a pass finds no new one,
    as a thread may start between a listing and the move of the thread that started it."""
    moved: set[int] = set()
    while True:
        try:
            threads = {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
        except FileNotFoundError:  # the process has exited
            return len(moved)
        new = threads - moved
        if not new:
            return len(moved)
        for tid in new:
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:  # that thread has exited
                pass
        moved |= new


def process_gone(pid: int) -> bool:
    """Whether every thread of ``pid`` has exited.

    A zombie main thread alone is not enough: after SIGKILL the JVM's main thread can show as
    a zombie while other threads, still holding the node's sockets, are being torn down.
    """
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return True
    return state in ("Z", "X") and threads <= 1


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the JVM leads its own session (start_new_session=True)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)

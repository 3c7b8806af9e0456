"""The gRPC contract (protos/digits/v1), checked with buf: ``python -m scripts.contract CMD``.

- ``lint``: buf lint with the committed buf.yaml.
- ``breaking``: buf breaking against the contract as last released, a committed image
  (protos/released/digits-v1.binpb), so that clients generated from an older digits.v1 keep
  working. A committed snapshot, not a git ref: CI runs on a fresh clone that may not hold the
  release's ref, and the snapshot says exactly what was promised.
- ``release [--ref REF]``: rewrite that snapshot from protos/ (or from a git ref's protos/).
  Run it when a version is released, and commit the result.

buf comes from the Go module proxy into the tools cache (scripts/kube/tools.py), like the chart's tools.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.kube import tools

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "protos" / "released" / "digits-v1.binpb"


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run buf in ``cwd`` (a folder with buf.yaml); the result, whatever its exit code."""
    return subprocess.run(
        [str(tools.require("buf")), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def lint(cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return buf("lint", cwd=cwd)


def breaking(cwd: Path = ROOT, against: Path = SNAPSHOT) -> subprocess.CompletedProcess[str]:
    return buf("breaking", "--against", str(against), cwd=cwd)


def workspace_copy(destination: Path, ref: str | None = None) -> Path:
    """buf.yaml and protos/ in ``destination``: from the working tree, or from git ``ref``."""
    destination.mkdir(parents=True, exist_ok=True)
    if ref is None:
        shutil.copytree(ROOT / "protos", destination / "protos", ignore=shutil.ignore_patterns("released"))
    else:
        archive = subprocess.run(
            ["git", "archive", ref, "protos"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(
            ["tar", "-x", "-C", str(destination), "--exclude=protos/released"], input=archive, check=True
        )
    shutil.copy(ROOT / "buf.yaml", destination / "buf.yaml")
    return destination


def release(ref: str | None = None) -> Path:
    with tempfile.TemporaryDirectory() as temp:
        workspace = workspace_copy(Path(temp), ref)
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        # Source info (comments, line numbers) is not needed to compare against: a smaller file.
        done = buf("build", "--exclude-source-info", "-o", str(SNAPSHOT), cwd=workspace)
    if done.returncode != 0:
        raise SystemExit(done.stderr or done.stdout)
    return SNAPSHOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.contract", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lint", help="buf lint")
    sub.add_parser("breaking", help="buf breaking against the released snapshot")
    rel = sub.add_parser("release", help="rewrite the released snapshot")
    rel.add_argument("--ref", help="a git ref whose protos/ to snapshot (default: the working tree)")
    args = parser.parse_args(argv)
    if args.command == "release":
        print(release(args.ref))
        return 0
    done = lint() if args.command == "lint" else breaking()
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())

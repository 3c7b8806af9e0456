"""The Go client example (clients/go-example) works as its README says: Go code generated from
protos/ with buf and the Go plugins, built, and run against a real recognizer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from scripts.kube import tools
from tests.helpers import DATA, ROOT


def test_the_go_example_recognises_a_seven(recognizer, tmp_path):
    # A copy beside a link to protos/, so that the generated code and the binary stay out of the clone.
    (tmp_path / "protos").symlink_to(ROOT / "protos")
    example = shutil.copytree(ROOT / "clients" / "go-example", tmp_path / "clients" / "go-example",
                              ignore=shutil.ignore_patterns("gen", "digits-example"))  # fmt: skip
    plugins = [tools.require(name).parent for name in ("buf", "protoc-gen-go", "protoc-gen-go-grpc")]
    go = shutil.which("go") or "/usr/local/go/bin/go"  # this machine kind ships Go there
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*map(str, plugins), str(Path(go).parent), os.environ["PATH"]]),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=example, env=env, capture_output=True, text=True, timeout=240, check=False
        )

    generated = run("buf", "generate")
    assert generated.returncode == 0, generated.stderr
    assert (example / "gen" / "digits" / "v1" / "recognizer_grpc.pb.go").exists()
    built = run("go", "build", "-o", "digits-example", ".")
    assert built.returncode == 0, built.stderr

    seven = run("./digits-example", recognizer, str(DATA / "seven.png"))
    assert seven.returncode == 0, seven.stderr
    assert seven.stdout.startswith("digit 7, confidence "), seven.stdout
    bad = run("./digits-example", recognizer, str(ROOT / "README.md"))
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr, bad

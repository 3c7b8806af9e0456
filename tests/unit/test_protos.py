"""The committed gRPC stubs in digits/v1 are exactly what `make protos` generates from protos/."""

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_generated_code_is_fresh(tmp_path: Path):
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos],
        cwd=ROOT / "protos" / "..", check=True,
    )  # fmt: skip
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc generated nothing"
    for relative in generated:
        committed = ROOT / relative
        assert committed.exists(), f"{relative} is not committed: run `make protos`"
        assert committed.read_bytes() == (tmp_path / relative).read_bytes(), (
            f"{relative} is stale: run `make protos` and commit the result"
        )

"""The gRPC contract under buf: it lints clean, and nothing in it breaks a client generated from
the contract as last released (protos/released/digits-v1.binpb; see scripts/contract.py).

The last three tests prove that the breaking check can fail: they change a copy of protos/ the
way a careless edit would and expect buf to say so, and that an additive change passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from scripts import contract


def _report(done) -> str:
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def test_buf_lint_passes():
    done = contract.lint()
    assert done.returncode == 0 and not done.stdout.strip(), _report(done)


def test_no_breaking_change_since_the_released_contract():
    done = contract.breaking()
    assert done.returncode == 0 and not done.stdout.strip(), _report(done)


def test_the_snapshot_holds_the_released_services():
    # A breaking check against an empty or wrong image would pass whatever changed.
    image = descriptor_pb2.FileDescriptorSet.FromString(contract.SNAPSHOT.read_bytes())
    files = {f.name: f for f in image.file}
    assert {"digits/v1/recognizer.proto", "digits/v1/recorder.proto"} <= files.keys()
    services = {s.name: {m.name for m in s.method} for f in files.values() for s in f.service}
    assert services["Recognizer"] == {"Recognize", "RecognizeBatch"}
    assert {"Record", "GetRecognition", "ListRecognitions", "DeleteRecognition"} <= services["Recorder"]


def _edited_copy(tmp_path: Path, old: str, new: str) -> Path:
    workspace = contract.workspace_copy(tmp_path / "ws")
    proto = workspace / "protos" / "digits" / "v1" / "recognizer.proto"
    text = proto.read_text()
    assert old in text, f"the edit's anchor {old!r} is gone from recognizer.proto: update this test"
    proto.write_text(text.replace(old, new, 1))
    return workspace


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        # Renumbered: an old client reads nothing where it expects the digit.
        (
            "int32 digit = 1;",
            "int32 digit = 15;",
            'Previously present field "1" with name "digit" on message "RecognizeResponse" was deleted',
        ),
        # Renamed: the wire is the same, but a generated client's code no longer compiles.
        (
            "float confidence = 2;",
            "float certainty = 2;",
            'Field "2" on message "RecognizeResponse" changed name from "confidence" to "certainty"',
        ),
    ],
    ids=["renumbered", "renamed"],
)
def test_the_breaking_check_catches_an_incompatible_edit(tmp_path, old, new, complaint):
    done = contract.breaking(cwd=_edited_copy(tmp_path, old, new))
    assert done.returncode != 0, _report(done)
    assert "protos/digits/v1/recognizer.proto" in done.stdout and complaint in done.stdout, _report(done)


def test_an_added_field_is_not_breaking(tmp_path):
    done = contract.breaking(
        cwd=_edited_copy(
            tmp_path,
            "string model_version = 4;",
            "string model_version = 4;\n  string added_by_this_test = 99;",
        )
    )
    assert done.returncode == 0, _report(done)

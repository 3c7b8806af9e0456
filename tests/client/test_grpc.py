"""The client and the CLI over gRPC, against a real recognizer (conftest.py's ``recognizer``)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from digits_client import GrpcClient, ProblemError, Recognition

from tests.helpers import DATA

SEVEN = (DATA / "seven.png").read_bytes()


def test_recognize_and_a_bad_image(recognizer):
    with GrpcClient(recognizer=recognizer) as client:
        answer = client.recognize(SEVEN, "image/png")
        with pytest.raises(ProblemError) as bad:
            client.recognize(b"not an image")
    assert isinstance(answer, Recognition) and answer.digit == 7 and answer.id is None
    assert answer.model_version and len(answer.probabilities) == 10
    assert (bad.value.slug, bad.value.grpc_code) == ("not-an-image", "INVALID_ARGUMENT")


def test_a_batch_fails_image_by_image(recognizer):
    with GrpcClient(recognizer=recognizer) as client:
        first, second, third = client.recognize_batch([SEVEN, b"GIF89a truncated", SEVEN])
    assert isinstance(first, Recognition) and first.digit == 7 and first.model_version
    assert isinstance(second, ProblemError) and second.slug in {"not-an-image", "corrupt-image"}
    assert isinstance(third, Recognition) and third.digit == 7


def test_the_cli_recognises_a_folder_in_order_and_reports_the_bad_file(digits, recognizer, tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.png", "sub/c.png"):
        shutil.copy(DATA / "seven.png", tmp_path / name)
    (tmp_path / "[b].png").write_bytes(b"not an image")  # brackets: rich markup if mishandled
    (tmp_path / "notes.txt").write_text("not looked at: not an image suffix")

    run = digits("recognize", "--grpc", recognizer, "--json", tmp_path)
    assert run.code == 1, run  # one file failed
    rows = json.loads(run.out)
    assert [r["file"] for r in rows] == [str(tmp_path / n) for n in ("[b].png", "a.png", "sub/c.png")]
    assert rows[1]["recognition"]["digit"] == 7 and rows[2]["recognition"]["digit"] == 7
    assert (
        rows[0]["problem"]["slug"] == "not-an-image" and rows[0]["problem"]["grpc_code"] == "INVALID_ARGUMENT"
    )
    assert "2 recognised, 1 failed" in run.err

    table = digits("recognize", "--grpc", recognizer, tmp_path, env={"COLUMNS": "400"})  # no wrapped cells
    assert table.code == 1 and "not-an-image" in table.out and "[b].png" in table.out, table


def test_many_files_at_once_come_back_in_the_order_given(digits, recognizer, tmp_path):
    files = []
    for i in range(24):
        files.append(tmp_path / f"{i:02}.png")
        shutil.copy(DATA / "seven.png", files[-1])
    run = digits("recognize", "--grpc", recognizer, "--concurrency", 8, "--csv", *files)
    assert run.code == 0, run
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert [r["file"] for r in rows] == [str(f) for f in files]
    assert {r["digit"] for r in rows} == {"7"} and all(r["problem"] == "" for r in rows)

"""The CLI without a service: help, usage errors and an address where nothing listens
(a real refused connection, not a fake)."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import DATA


@pytest.mark.parametrize("command", [[], ["recognize"], ["history"], ["label"], ["stats"]])
def test_help_for_everything_lists_the_exit_codes(digits, command):
    run = digits(*command, "--help")
    assert run.code == 0, run
    assert "usage: digits" in run.out and "exit codes:" in run.out and "DIGITS_URL" in run.out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["recognize"],
        ["recognize", "no/such/file.png"],
        ["label", "some-id", "10"],
        ["history", "--limit", "0"],
        ["frobnicate"],
    ],
    ids=["no-command", "no-file", "missing-file", "digit-10", "limit-0", "unknown-command"],
)
def test_usage_errors_exit_2_before_calling_anything(digits, args):
    # The URL has nothing behind it: an exit code other than 2 would mean a call was tried.
    run = digits(*args, env={"DIGITS_URL": "http://127.0.0.1:9"})
    assert run.code == 2, run
    assert "error" in run.err


def test_a_folder_without_images_is_a_usage_error(digits, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    run = digits("recognize", tmp_path)
    assert run.code == 2 and "no image files" in run.err, run


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_an_unreachable_gateway_exits_4_and_says_where(digits):
    url = f"http://127.0.0.1:{_closed_port()}"
    run = digits("--url", url, "recognize", DATA / "seven.png")
    assert run.code == 4, run
    assert f"cannot reach {url}" in run.err


def test_an_unreachable_recognizer_exits_4(digits):
    run = digits("recognize", "--grpc", f"127.0.0.1:{_closed_port()}", "--json", DATA / "seven.png")
    assert run.code == 4, run
    assert '"slug": "unreachable"' in run.out

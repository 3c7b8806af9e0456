"""A dev-stack service's output (scripts/devstack.py ``Process``): always in its log file, on
the terminal only when asked, through real child processes."""

from __future__ import annotations

import sys

from scripts.devstack import Process

SPEAK = [sys.executable, "-c", "import sys; print('one'); print('two', file=sys.stderr)"]
UNBUFFERED = {"PYTHONUNBUFFERED": "1"}  # the order the lines were written in, as the services run


def test_unechoed_output_goes_straight_to_the_log_file_with_no_copying_thread(tmp_path, capsys) -> None:
    process = Process("gateway", SPEAK, UNBUFFERED, tmp_path / "logs" / "gateway.log", echo=False)
    assert process._pump is None  # the child holds the file itself
    process.popen.wait()
    assert process.stop() == 0
    assert (tmp_path / "logs" / "gateway.log").read_text().splitlines() == ["one", "two"]
    assert capsys.readouterr().out == ""


def test_echoed_output_goes_to_the_log_file_and_the_terminal_with_the_services_name(tmp_path, capsys) -> None:
    log = tmp_path / "recorder.log"
    log.write_text("earlier run\n")
    process = Process("recorder", SPEAK, UNBUFFERED, log, echo=True)
    process.popen.wait()
    assert process.stop() == 0
    assert log.read_text().splitlines() == ["earlier run", "one", "two"]  # appended, not replaced
    assert capsys.readouterr().out.splitlines() == ["  recorder | one", "  recorder | two"]
    assert process.tail(1) == "two\n"

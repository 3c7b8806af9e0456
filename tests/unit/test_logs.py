"""The JSON log line every service writes (digits/logs.py): its fields, its timestamp, and the
per-record work that ``setup`` turns off. ``setup`` changes the logging module for the whole
process, so it runs in a child interpreter."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from digits.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


def record(created: float, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("services.gateway.requests", logging.INFO, __file__, 1, "request %s", ("done",), None)
    made.created, made.msecs = created, (created - int(created)) * 1000
    made.__dict__.update(extra)
    return made


def test_a_line_is_one_json_object_with_the_standard_fields_and_the_extras() -> None:
    line = JsonFormatter("gateway").format(record(1_765_000_000.25, request_id="r-1", status=201, when=time))
    assert json.loads(line) == {
        "ts": "2025-12-06T05:46:40.250Z",
        "level": "info",
        "service": "gateway",
        "logger": "services.gateway.requests",
        "msg": "request done",
        "request_id": "r-1",
        "status": 201,
        "when": str(time),  # what JSON cannot hold is written as its str()
    }


def test_the_timestamp_follows_each_record_across_seconds() -> None:
    formatter = JsonFormatter("gateway")
    stamps = [json.loads(formatter.format(record(t)))["ts"] for t in (59.5, 59.75, 60.0, 3661.125, 59.5)]
    assert stamps == [
        "1970-01-01T00:00:59.500Z",
        "1970-01-01T00:00:59.750Z",
        "1970-01-01T00:01:00.000Z",
        "1970-01-01T01:01:01.125Z",
        "1970-01-01T00:00:59.500Z",  # an earlier second again (another thread's record)
    ]


def test_an_exception_is_logged_with_its_traceback() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        failed = record(0.0)
        failed.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter("recorder").format(failed))
    assert entry["exc"].startswith("Traceback") and "ValueError: bad" in entry["exc"]


def test_setup_writes_json_lines_to_stdout_without_gathering_what_no_line_shows() -> None:
    script = (
        "import logging\n"
        "from digits import logs\n"
        "logs.setup('recognizer', 'info')\n"
        "seen = []\n"
        "logging.getLogger().handlers[0].addFilter(lambda r: seen.append((r.funcName, r.thread, r.process)) or True)\n"
        "logging.getLogger('x').info('hello', extra={'n': 1})\n"
        "logging.getLogger('x').debug('hidden')\n"
        "import sys; print(seen, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    (line,) = done.stdout.splitlines()
    entry = json.loads(line)
    assert (entry["service"], entry["logger"], entry["msg"], entry["n"]) == ("recognizer", "x", "hello", 1)
    assert done.stderr.strip() == "[('(unknown function)', None, None)]"

"""Structured logs: one JSON object per line on stdout, which is what log collectors in a
cluster (and ``jq`` on a laptop) read best.

The gateway writes a line per request, so a line's cost counts: about a third of it went to
work no line shows (the caller's frame, thread and process names) and to building a JSON encoder
and a timestamp string afresh each time. ``setup`` turns the first off, as the logging HOWTO's
"Optimization" section describes; the formatter keeps one encoder and one timestamp a second.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else passed through ``extra=`` is a structured field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        # The encoder json.dumps(..., default=str) would build for every line.
        self._encode = json.JSONEncoder(default=str).encode
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a race between threads only formats the same second twice
            self._stamp, self._second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)), second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": f"{self._timestamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._encode(entry)


def setup(service: str, level: str = "info") -> None:
    """Route all logging (ours and libraries') to stdout as JSON lines."""
    # Not gathered for each record: no line shows the caller's file and line, thread or process.
    logging._srcfile = None  # type: ignore[attr-defined]  # the HOWTO's documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

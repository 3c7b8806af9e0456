"""A steady load of uploads, as a careful client sends them, and what became of each.

Every upload has its own Idempotency-Key and a file name made of it, so that a stored record
can be traced back to the upload that made it: a key with two records is a duplicate. A
failed attempt (503, a timeout, a refused connection) is retried with the same key while the
upload's budget lasts, as the README tells clients to.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.helpers import DATA, all_pages

SEVEN = (DATA / "seven.png").read_bytes()


@dataclass
class Attempt:
    key: str
    started: float
    ended: float
    outcome: str  # "201", "200", "503", "timeout", "connection", or another status
    record_id: str | None = None
    retry_after: str | None = None


@dataclass
class Tally:
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # key -> record id
    failed: dict[str, str] = field(default_factory=dict)  # key -> last outcome, once out of budget
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uploads(self) -> int:
        return len(self.acknowledged) + len(self.failed)

    def failed_attempts(self) -> Counter[str]:
        return Counter(a.outcome for a in self.attempts if a.outcome not in ("201", "200"))


def _attempt(client: httpx.Client, key: str) -> Attempt:
    started = time.monotonic()
    try:
        reply = client.post(
            "/v1/recognitions",
            files={"image": (f"{key}.png", SEVEN, "image/png")},
            headers={"Idempotency-Key": key},
        )
    except httpx.TimeoutException:
        return Attempt(key, started, time.monotonic(), "timeout")
    except httpx.TransportError:  # refused, reset: the gateway is down or went away
        return Attempt(key, started, time.monotonic(), "connection")
    record_id = reply.json().get("id") if reply.status_code in (200, 201) else None
    return Attempt(key, started, time.monotonic(), str(reply.status_code), record_id, reply.headers.get("retry-after"))


class Load:
    """``workers`` threads uploading as fast as answers come, until stopped."""

    def __init__(self, base_url: str, token: str, workers: int = 4, retry_budget: float = 30.0) -> None:
        self.tally = Tally()
        self._base_url, self._token = base_url, token
        self._retry_budget = retry_budget
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Tally:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._retry_budget + 30)
        return self.tally

    def _work(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        with httpx.Client(base_url=self._base_url, headers=headers, timeout=20) as client:
            while not self._stop.is_set():
                self._upload(client, str(uuid.uuid4()))

    def _upload(self, client: httpx.Client, key: str) -> None:
        give_up = time.monotonic() + self._retry_budget
        while True:
            attempt = _attempt(client, key)
            with self.tally.lock:
                self.tally.attempts.append(attempt)
            if attempt.record_id is not None:
                with self.tally.lock:
                    self.tally.acknowledged[key] = attempt.record_id
                return
            if attempt.outcome not in ("503", "timeout", "connection") or time.monotonic() > give_up:
                with self.tally.lock:
                    self.tally.failed[key] = attempt.outcome
                return
            time.sleep(0.2)


def stored_by_key(base_url: str, admin_token: str, user: str) -> dict[str, list[str]]:
    """Every record in ``user``'s history, by the upload key its file name carries."""
    found: dict[str, list[str]] = {}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30) as client:
        for item in all_pages(client, pages=1000, user=user, limit=100):
            found.setdefault(item["filename"].removesuffix(".png"), []).append(item["id"])
    return found

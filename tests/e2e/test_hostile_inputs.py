"""Hostile clients against the real stack: a generated corpus of bad uploads and bad HTTP.

Every case must get a 4xx (or a 503), never a 5xx and never a hang, and the services must keep
answering afterwards; their memory before and after is printed. What reaches the app is a
problem+json body; what the HTTP server refuses before the app sees it (a request line or
header block beyond its parser's limits) is a plain 4xx from uvicorn or a closed connection.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.helpers import DATA, png_bomb, png_sixteen_bit

SEVEN = (DATA / "seven.png").read_bytes()


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (48, 48), dtype=np.uint8), "L").convert("RGB").save(buffer, fmt)  # noqa: E501
    return buffer.getvalue()


def _uploads() -> Iterator[tuple[str, bytes, str]]:
    """(case, bytes, claimed content type)"""
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        whole = _encoded(fmt)
        yield f"truncated-{fmt.lower()}", whole[: len(whole) // 2], f"image/{fmt.lower()}"
        yield f"header-only-{fmt.lower()}", whole[:16], f"image/{fmt.lower()}"
        garbled = bytearray(whole)
        garbled[len(garbled) // 3 : len(garbled) // 3 + 64] = b"\xff" * 64
        yield f"garbled-{fmt.lower()}", bytes(garbled), f"image/{fmt.lower()}"
    yield "png-bomb-50k-square", png_bomb(50_000, 50_000), "image/png"
    yield "png-one-by-huge", png_bomb(1, 2**31 - 1), "image/png"
    yield "png-zero-size", png_bomb(0, 0), "image/png"
    # Pillow opens these as RGB and RGBA; the fast PNG path must not take them (png.py).
    yield "png-16-bit-rgb", png_sixteen_bit(2), "image/png"
    yield "png-16-bit-rgba", png_sixteen_bit(6), "image/png"
    yield "gif-65535-square", b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x3b", "image/gif"
    yield "polyglot-gif-html", b"GIF89a/*<script>alert(1)</script>*/=1;", "image/gif"
    yield "svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "image/svg+xml"
    yield "html-claiming-png", b"<html><body>hi</body></html>", "image/png"
    yield "zip", b"PK\x03\x04" + b"\0" * 100, "application/zip"
    yield "png-as-text-html", SEVEN, "text/html"  # a real image with a lying type: recognised
    yield "nul-bytes", b"\0" * 5000, "image/png"


UPLOADS = list(_uploads())


@pytest.mark.parametrize(("data", "claimed"), [(d, c) for _, d, c in UPLOADS], ids=[n for n, _, _ in UPLOADS])
def test_hostile_uploads_get_a_documented_answer(http, data, claimed):
    started = time.monotonic()
    reply = http.post("/v1/recognitions", files={"image": ("upload", data, claimed)})
    assert time.monotonic() - started < 20
    assert reply.status_code in (201, 400, 413, 415, 422), reply.text
    if reply.status_code != 201:
        assert reply.headers["content-type"] == "application/problem+json"


MULTIPART = "multipart/form-data; boundary=XyZ"
FORMS: list[tuple[str, dict[str, str], bytes, set[int]]] = [
    ("no-boundary", {"content-type": "multipart/form-data"}, b"--XyZ\r\n\r\n--XyZ--\r\n", {400}),
    ("wrong-boundary", {"content-type": MULTIPART}, b"--Other\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\nx\r\n--Other--\r\n", {400}),  # noqa: E501
    ("unterminated", {"content-type": MULTIPART}, b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\"\r\n\r\n" + SEVEN[:100], {400, 415, 422}),  # noqa: E501
    ("no-disposition", {"content-type": MULTIPART}, b"--XyZ\r\n\r\nabc\r\n--XyZ--\r\n", {400}),
    ("many-fields", {"content-type": MULTIPART}, b"".join(b"--XyZ\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n" % i for i in range(50)) + b"--XyZ--\r\n", {400}),  # noqa: E501
    ("two-files", {"content-type": MULTIPART}, b"".join(b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%d\"\r\n\r\nx\r\n" % i for i in range(2)) + b"--XyZ--\r\n", {400}),  # noqa: E501
    ("huge-text-field", {"content-type": MULTIPART}, b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n" + b"u" * 100_000 + b"\r\n--XyZ--\r\n", {400}),  # noqa: E501
    ("non-utf8-user", {"content-type": MULTIPART}, b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n\xff\xfe\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n" + SEVEN + b"\r\n--XyZ--\r\n", {201, 400}),  # noqa: E501
    ("non-utf8-filename", {"content-type": MULTIPART}, b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\xff\xfe.png\"\r\n\r\n" + SEVEN + b"\r\n--XyZ--\r\n", {201, 400}),  # noqa: E501
    ("json-body", {"content-type": "application/json"}, b'{"image": "' + b"A" * 1000 + b'"}', {415}),
    ("no-content-type", {}, SEVEN, {415}),
    ("garbage-content-type", {"content-type": "multipart/form-data;;;===boundary=\"\\"}, SEVEN, {400, 415}),
]


@pytest.mark.parametrize(("headers", "body", "allowed"), [(h, b, a) for _, h, b, a in FORMS], ids=[n for n, _, _, _ in FORMS])  # noqa: E501
def test_malformed_requests_get_a_documented_4xx(http, headers, body, allowed):
    reply = http.post("/v1/recognitions", content=body, headers=headers)
    assert reply.status_code in allowed, reply.text
    if reply.status_code >= 400:
        assert reply.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("params", "allowed"),
    [("user=%FF%FE%FF", {400}), ({"since": "\x00" * 10}, {400}), ({"user": "a", "user ": "b"}, {200}),
     ({f"k{i}": "v" for i in range(500)}, {200}), ({"page_token": "%" * 400}, {400}), ({"limit": "9" * 60}, {400}),
     ({"since": "2026-02-30T00:00:00Z"}, {400})],
    ids=["invalid-utf8", "nul-time", "unknown-name-ignored", "500-unknown-params", "percent-token", "huge-limit", "feb-30"],
)  # fmt: skip
def test_hostile_query_strings_get_a_documented_answer(http, params, allowed):
    # A str is sent as it stands (already percent-encoded bytes), a dict through httpx.
    reply = http.get(f"/v1/recognitions?{params}") if isinstance(params, str) else http.get("/v1/recognitions", params=params)
    assert reply.status_code in allowed, reply.text
    assert reply.headers["content-type"] == ("application/json" if reply.status_code == 200 else "application/problem+json")


def _raw(stack, request: bytes, read: bool = True) -> bytes:
    c = stack.config
    with socket.create_connection((c.bind, c.gateway_port), timeout=10) as sock:
        sock.sendall(request)
        if not read:
            return b""
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /v1/recognitions?user=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n",
        b"NOT-HTTP AT ALL\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/recognitions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/recognitions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzz\r\n",
        # Control characters in a field value (RFC 9110 5.5): the HTTP parser refuses them.
        b"POST /v1/recognitions HTTP/1.1\r\nHost: x\r\nContent-Type: \x7f\x01;;;===boundary\r\nContent-Length: 2\r\n\r\nab",
    ],
    ids=["70k-header", "70k-query", "2000-headers", "not-http", "non-utf8-path", "negative-length", "bad-chunked",
         "control-characters-in-a-header"],
)
def test_malformed_or_huge_http_never_gets_a_5xx(stack, request_bytes):
    """Refused below the app (a 4xx from uvicorn, or the connection closed), or served as usual
    when within the HTTP parser's limits (a 70 KB header is); never a 5xx, never a hang."""
    answer = _raw(stack, request_bytes)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    assert status is None or status < 500, answer[:300]


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_after_a_slow_body_and_the_whole_corpus_the_services_still_answer(stack, http, capsys):
    before = {name: _rss_kib(p.popen.pid) for name, p in stack.processes.items()}
    # A client that promises a body and stalls: the server must not wait on it for others.
    c = stack.config
    stalled = socket.create_connection((c.bind, c.gateway_port), timeout=10)
    stalled.sendall(b"POST /v1/recognitions HTTP/1.1\r\nHost: x\r\nContent-Type: " + MULTIPART.encode() + b"\r\nContent-Length: 100000\r\n\r\n--XyZ\r\n")  # noqa: E501
    try:
        for _, data, claimed in UPLOADS:
            http.post("/v1/recognitions", files={"image": ("upload", data, claimed)})
        started = time.monotonic()
        ok = http.post("/v1/recognitions", files={"image": ("seven.png", SEVEN, "image/png")})
        assert ok.status_code == 201 and ok.json()["digit"] == 7
        assert time.monotonic() - started < 10
    finally:
        stalled.close()
    after = {name: _rss_kib(p.popen.pid) for name, p in stack.processes.items()}
    with capsys.disabled():
        print("\nRSS before → after the hostile corpus: " + ", ".join(
            f"{name} {before[name] / 1024:.0f} → {after[name] / 1024:.0f} MiB" for name in before))  # fmt: skip
    for name in before:
        assert after[name] < before[name] + 300 * 1024, f"{name} grew by {(after[name] - before[name]) / 1024:.0f} MiB"

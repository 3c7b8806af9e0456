"""Test helpers: free ports, in-process gRPC services, bearer tokens, sample images."""

from __future__ import annotations

import asyncio
import os
import io
import random
import secrets
import socket
import struct
import threading
import zlib
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from digits.grpc_server import GrpcService
from scripts.devstack import free_port  # noqa: F401  (tests import it from here)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
MNIST_DIR = Path(os.environ.get("MNIST_DIR", ROOT.parent / "shared" / "mnist"))


# The admin token of the recorders the tests start themselves (at least 32 characters).
TEST_ADMIN_TOKEN = "test-admin-" + secrets.token_hex(16)


class _Bearer(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        metadata = [*(details.metadata or ()), self._metadata]
        return continuation(details._replace(metadata=metadata), request)


def with_token(channel: grpc.Channel, token: str = TEST_ADMIN_TOKEN) -> grpc.Channel:
    """``channel`` with every call carrying ``authorization: Bearer <token>`` (the admin's by default)."""
    return grpc.intercept_channel(channel, _Bearer(token))


def all_pages(http, pages: int = 50, **params) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every item of a ``GET /v1/recognitions`` listing, following next_page_token to the end."""
    items, token = [], None
    for _ in range(pages):
        reply = http.get("/v1/recognitions", params={**params, **({"page_token": token} if token else {})})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert len(body["items"]) <= int(params.get("limit", 20))
        items += body["items"]
        token = body["next_page_token"]
        if token is None:
            return items
    raise AssertionError("paging does not end")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def free_loopback_hosts(count: int) -> list[str]:
    """``count`` consecutive loopback addresses where no Cassandra (or anything) listens.

    Each test session picks its own, at random within 127.0.0.0/8, so two suites on one machine
    (two developers, or a suite beside `make run` on 127.0.0.1) never share a node.
    """
    rng = random.SystemRandom()
    for _ in range(100):
        second, third, first_host = rng.randrange(100, 250), rng.randrange(1, 250), rng.randrange(2, 240)
        hosts = [f"127.{second}.{third}.{first_host + i}" for i in range(count)]
        if not any(_listening(h, p) for h in hosts for p in (7000, 9042)):
            return hosts
    raise RuntimeError("no free loopback addresses found")


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive free ports (for JMX: node i uses base + i)."""
    rng = random.SystemRandom()
    for _ in range(100):
        base = rng.randrange(20000, 30000)
        if not any(_listening(host, base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port block found")


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def mnist_test(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test digits and labels."""
    from services.recognizer import mnist

    return (
        mnist.load_images(MNIST_DIR / mnist.FILES["test_images"])[:count],
        mnist.load_labels(MNIST_DIR / mnist.FILES["test_labels"])[:count],
    )


class ServiceThread:
    """Runs a GrpcService on its own event loop in a thread, on an ephemeral loopback port."""

    def __init__(self, service: GrpcService) -> None:
        self.service = service
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.port = await self.service.start()
        self._started.set()
        await self._stop.wait()
        await self.service.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ServiceThread":
        self._thread.start()
        if not self._started.wait(30):
            raise TimeoutError("the service did not open its port")
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.service.wait_ready(), self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the service did not stop"


def png_file(width: int, height: int, depth: int, colour_type: int, raw: bytes, interlace: int = 0) -> bytes:
    """A PNG written by hand, for what Pillow cannot write: ``raw`` is its rows, each with its
    filter byte (or any bytes, for a broken one)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A tiny, valid PNG declaring a huge grey image of zeros: a decompression bomb (the header
    does the damage; the body is the start of the rows)."""
    return png_file(width, height, 8, 0, b"\0" * 100_000)


def png_sixteen_bit(colour_type: int = 2, width: int = 30, height: int = 20) -> bytes:
    """A 16-bit RGB (colour type 2) or RGBA (6) PNG of noise: Pillow opens it as RGB or RGBA,
    keeping 8 bits."""
    channels = {2: 3, 6: 4}[colour_type]
    pixels = np.random.default_rng(3).integers(0, 65536, (height, width, channels), dtype=np.uint16).astype(">u2")
    return png_file(width, height, 16, colour_type, b"".join(b"\0" + row.tobytes() for row in pixels))

"""Property-based tests (hypothesis) of preprocessing: whatever bytes arrive, to_mnist and
segment.read (what the service runs: every digit, and the cuts of touching ones) either return
valid 28×28 fields or raise ImageError with a known reason; never another exception, never a
NaN, never a hang."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from services.recognizer import decoding, preprocess, segment

REASONS = {"EMPTY_IMAGE", "NOT_AN_IMAGE", "CORRUPT_IMAGE", "IMAGE_TOO_LARGE", "NO_DIGIT_FOUND", "TOO_MANY_DIGITS"}
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
SMALL = decoding.Limits(max_bytes=200_000, max_pixels=1_000_000)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _check(data: bytes) -> None:
    for read in (lambda: [preprocess.to_mnist(data, SMALL)], lambda: _fields(segment.read(data, SMALL))):
        try:
            fields = read()
        except decoding.ImageError as exc:
            assert exc.reason in REASONS, exc.reason
            assert str(exc)
            continue
        assert 1 <= len(fields)
        for field in fields:
            assert field.shape == (28, 28) and field.dtype == np.float32
            assert np.isfinite(field).all() and field.min() >= 0.0 and field.max() <= 1.0


def _fields(groups: list[segment.Group]) -> list[np.ndarray]:
    assert 1 <= len(groups) <= segment.MAX_DIGITS
    return [piece.field for group in groups for piece in group.pieces.values()]


@FAST
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_are_a_field_or_a_known_refusal(data: bytes) -> None:
    _check(data)


@st.composite
def encoded_images(draw) -> bytes:  # type: ignore[no-untyped-def]
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "1", "P", "I;16", "F"]))
    fmt = draw(st.sampled_from(FORMATS))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    if mode == "I;16":
        image = Image.fromarray(pixels.astype(np.uint16) * 257)
    elif mode == "F":
        image = Image.fromarray(pixels.astype(np.float32) / 255)
    else:
        image = Image.fromarray(pixels, "L").convert(mode)
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):  # a mode the format cannot hold: use PNG
        buffer = io.BytesIO()
        image.convert("L").save(buffer, "PNG")
    return buffer.getvalue()


@FAST
@given(encoded_images(), st.data())
def test_real_images_and_their_damaged_copies_never_escape(data: bytes, more: st.DataObject) -> None:
    _check(data)
    cut = more.draw(st.integers(0, len(data)))
    _check(data[:cut])  # truncated
    position = more.draw(st.integers(0, len(data) - 1))
    flipped = bytearray(data)
    flipped[position] ^= more.draw(st.integers(1, 255))
    _check(bytes(flipped))  # one byte corrupted

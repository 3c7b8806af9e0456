"""Preprocessing turns uploads into MNIST-style 28×28 fields and refuses bad ones with a reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from services.recognizer import preprocess
from services.recognizer.preprocess import ImageError, Limits
from tests.helpers import DATA, encode, mnist_test


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return mnist_test(50)


def center_of_mass(field: np.ndarray) -> tuple[float, float]:
    total = field.sum()
    rows, cols = np.indices(field.shape)
    return float((rows * field).sum() / total), float((cols * field).sum() / total)


def test_mnist_digit_survives_the_round_trip(digits):
    images, _ = digits
    for image in images[:20]:
        field = preprocess.to_mnist(encode(image))
        assert field.shape == (28, 28) and field.dtype == np.float32
        assert field.min() >= 0.0 and field.max() == pytest.approx(1.0)
        # MNIST itself is made the same way, so a digit from it comes back close to unchanged
        # (resampling and whole-pixel centring move strokes by at most about a pixel).
        assert np.abs(field - image / 255.0).mean() < 0.15


def test_field_follows_the_mnist_recipe(digits):
    images, _ = digits
    field = preprocess.to_mnist(encode(images[3]))
    rows, cols = np.nonzero(field > 0.05)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert max(height, width) in (20, 21, 22)  # longest side scaled to 20 (plus resampling blur)
    cy, cx = center_of_mass(field)
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75


def test_dark_ink_on_light_paper_equals_mnist_polarity(digits):
    images, _ = digits
    light_on_dark = preprocess.to_mnist(encode(images[0]))
    dark_on_light = preprocess.to_mnist(encode(255 - images[0]))
    assert np.abs(light_on_dark - dark_on_light).mean() < 0.02


def test_small_off_centre_digit_in_a_large_photo_is_found_and_centred(digits):
    images, _ = digits
    canvas = np.full((600, 800), 235, dtype=np.uint8)  # light grey paper
    digit = np.asarray(Image.fromarray(255 - images[1]).resize((90, 90)))
    canvas[400:490, 60:150] = np.minimum(canvas[400:490, 60:150], digit)
    field = preprocess.to_mnist(encode(canvas, "JPEG"))
    reference = preprocess.to_mnist(encode(images[1]))
    assert np.abs(field - reference).mean() < 0.08
    cy, cx = center_of_mass(field)
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75


def test_transparent_canvas_drawing_is_flattened(digits):
    images, _ = digits
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = images[2]  # dark strokes drawn on a fully transparent background
    field = preprocess.to_mnist(encode(rgba))
    assert np.abs(field - preprocess.to_mnist(encode(images[2]))).mean() < 0.02


def test_first_frame_of_an_animation_is_used(digits):
    images, _ = digits
    frames = [Image.fromarray(255 - images[i]).convert("P") for i in (0, 1)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    field = preprocess.to_mnist(buffer.getvalue())
    assert np.abs(field - preprocess.to_mnist(encode(images[0]))).mean() < 0.03


def test_sample_image_in_the_readme_is_a_seven():
    field = preprocess.to_mnist((DATA / "seven.png").read_bytes())
    assert field.max() == pytest.approx(1.0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG declaring a huge grey image of zeros: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1_000_000, 9)  # the start of the rows; the header does the damage
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "EMPTY_IMAGE"),
        (b"hello, this is a text file\n", "NOT_AN_IMAGE"),
        (b"%PDF-1.7\n" + b"0" * 100, "NOT_AN_IMAGE"),
        (png_bomb(100_000, 100_000), "IMAGE_TOO_LARGE"),
        (png_bomb(7_000, 7_000), "IMAGE_TOO_LARGE"),
        (encode(np.full((40, 40), 255, dtype=np.uint8)), "NO_DIGIT_FOUND"),
        (encode(np.full((40, 40), 0, dtype=np.uint8)), "NO_DIGIT_FOUND"),
    ],
    ids=["empty", "text", "pdf", "bomb", "bomb-under-pil-limit", "blank-white", "blank-black"],
)
def test_bad_uploads_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageError) as caught:
        preprocess.to_mnist(data)
    assert caught.value.reason == reason
    assert str(caught.value)


def test_truncated_image_is_refused(digits):
    images, _ = digits
    data = encode(np.asarray(Image.fromarray(images[0]).resize((300, 300))), "PNG")
    with pytest.raises(ImageError) as caught:
        preprocess.to_mnist(data[: len(data) // 2])
    assert caught.value.reason == "CORRUPT_IMAGE"


def test_upload_over_the_byte_limit_is_refused(digits):
    images, _ = digits
    data = encode(images[0])
    with pytest.raises(ImageError) as caught:
        preprocess.to_mnist(data, Limits(max_bytes=len(data) - 1))
    assert caught.value.reason == "IMAGE_TOO_LARGE"

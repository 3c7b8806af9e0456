"""Plain PNGs are decoded by libspng to exactly Pillow's pixels; every other PNG stays with Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
import pyspng
from PIL import Image

from services.recognizer import decoding, png, preprocess
from services.recognizer.decoding import ImageError
from tests.helpers import mnist_test, png_file, png_sixteen_bit

CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
COLOUR_TYPE = {"L": 0, "LA": 4, "RGB": 2, "RGBA": 6}


def _saved(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def _adam7(pixels: np.ndarray, mode: str) -> bytes:
    """An interlaced (Adam7) PNG of 8-bit ``pixels``: each of the seven passes is a sub-image
    of its own rows, every row with filter 0."""
    height, width = pixels.shape[:2]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b"".join(
        b"\0" + pixels[row, x0::dx].tobytes()
        for x0, y0, dx, dy in passes
        if x0 < width
        for row in range(y0, height, dy)
    )
    return png_file(width, height, 8, COLOUR_TYPE[mode], raw, interlace=1)


def _four_bit_grey() -> bytes:
    levels = np.random.default_rng(4).integers(0, 16, (20, 30), dtype=np.uint8)
    packed = levels[:, 0::2] << 4 | levels[:, 1::2]
    return png_file(30, 20, 4, 0, b"".join(b"\0" + row.tobytes() for row in packed))


def _noise(mode: str, shape: tuple[int, int] = (37, 53)) -> Image.Image:
    # Random pixels: the encoder then uses every row filter (Sub, Up, Average, Paeth).
    pixels = np.random.default_rng(7).integers(0, 256, (*shape, CHANNELS[mode]), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(axis=2) if mode == "L" else pixels, mode)


def _pillow(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("mode", sorted(png.MODES))
@pytest.mark.parametrize("params", [{}, {"compress_level": 0}, {"optimize": True}], ids=["default", "stored", "optimized"])
def test_plain_pngs_decode_to_pillows_pixels(mode, params):
    data = _saved(_noise(mode), **params)
    assert png.plain(Image.open(io.BytesIO(data)), data, 512 * 512)
    decoded = png.decode(data, mode)
    assert decoded is not None and decoded.mode == mode
    assert decoded.tobytes() == _pillow(data).tobytes()


@pytest.mark.parametrize("mode", sorted(png.MODES))
def test_interlaced_pngs_decode_to_pillows_pixels(mode):
    image = _noise(mode)
    data = _adam7(np.asarray(image), mode)
    assert _pillow(data).tobytes() == image.tobytes()  # the hand-made file is right
    assert png.decode(data, mode).tobytes() == image.tobytes()


def _exif_png(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned a quarter
    return _saved(image, exif=exif)


def _animated(image: Image.Image) -> bytes:
    return _saved(image, save_all=True, append_images=[image.rotate(90)])


@pytest.mark.parametrize(
    "data",
    [
        _saved(_noise("LA")),  # grey + alpha: libspng 0.7 has no such output
        _saved(_noise("RGB").convert("P")),  # a palette
        _saved(_noise("L"), transparency=0),  # a colour key (tRNS)
        _saved(_noise("RGB"), transparency=(0, 0, 0)),
        _saved(_noise("L").convert("1")),  # 1 bit a pixel
        _saved(Image.fromarray(np.arange(2000, dtype=np.uint16).reshape(40, 50))),  # 16 bits
        png_sixteen_bit(2),  # mode RGB in Pillow, but 16 bits in the file
        png_sixteen_bit(6),
        _four_bit_grey(),  # mode L in Pillow
        _exif_png(_noise("L")),
        _animated(_noise("RGBA")),
        _saved(_noise("L", (600, 500))),  # more pixels than a working copy: Pillow, off the GIL
    ],
    ids=[
        "grey-alpha", "palette", "grey-colour-key", "rgb-colour-key", "1-bit", "16-bit", "16-bit-rgb", "16-bit-rgba",
        "4-bit-grey", "exif", "animated", "large",
    ],  # fmt: skip
)
def test_other_pngs_stay_with_pillow(data):
    assert not png.plain(Image.open(io.BytesIO(data)), data, 512 * 512)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_sixteen_bit_png_is_decoded_by_pillow(mode):
    image, size = decoding.open_upright(png_sixteen_bit(COLOUR_TYPE[mode]))
    assert image.mode == mode and size == (30, 20)


def test_a_jpeg_is_not_a_png():
    buffer = io.BytesIO()
    _noise("RGB").save(buffer, "JPEG")
    data = buffer.getvalue()
    assert not png.plain(Image.open(io.BytesIO(data)), data, 512 * 512)


def test_what_libspng_refuses_goes_back_to_pillow():
    data = _saved(_noise("RGBA", (300, 300)))
    assert png.decode(data[: len(data) // 2], "RGBA") is None
    assert png.decode(data[:-12] + b"garbage" * 3, "RGBA") is not None  # IEND is not needed
    with pytest.raises(ImageError) as caught:
        decoding.open_upright(data[: len(data) // 2])
    assert caught.value.reason == "CORRUPT_IMAGE"


def test_uploads_take_libspng_and_their_fields_do_not_change(monkeypatch):
    """A canvas drawing, a greyscale scan: the recipe's field is the same whichever decoder
    ran, and libspng is the one that did."""
    images, _ = mnist_test(8)
    uploads = [_saved(Image.fromarray(np.dstack([0 * d, 0 * d, 0 * d, d]).astype(np.uint8)).resize((280, 280)))
               for d in images[:4]]  # fmt: skip
    uploads += [_saved(Image.fromarray(255 - d).resize((112, 112))) for d in images[4:]]
    calls = []
    load = pyspng.load
    monkeypatch.setattr(pyspng, "load", lambda data: calls.append(len(data)) or load(data))
    fast = [preprocess.to_mnist(data) for data in uploads]
    assert len(calls) == len(uploads)
    monkeypatch.setattr(png, "plain", lambda *args: False)
    slow = [preprocess.to_mnist(data) for data in uploads]
    assert len(calls) == len(uploads)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)

"""Decode an upload defensively: the first frame, upright, in a working mode, within limits.

Every upload is untrusted bytes. The size is checked from the header before anything is
decompressed (a decompression bomb is refused from its header), only the first frame of an
animation or a multi-page file is read, EXIF orientation is applied, and the pixels come back
in one of a few modes the MNIST recipe (preprocess.py) can average. A JPEG photo is decoded
at the smallest DCT scale that keeps enough pixels, in luma alone; a small plain PNG by libspng
(png.py). Every failure is an ImageError with a stable reason.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.recognizer import png

# PIL's own guard against decompression bombs is global; ours (Limits) is checked first and
# gives a clearer message, so PIL's only has to stop what ours would miss.
Image.MAX_IMAGE_PIXELS = 100_000_000

# Images are shrunk to this before any numpy work: plenty of resolution for a digit, and it
# bounds memory and time whatever the upload's size.
WORKING_SIDE = 512
# A JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 scale when that keeps at least this on its
# longer side: a 4032×3024 phone photo at 1/8 (504 px, each pixel the mean of an 8×8 block),
# not at 1/4 (1008 px) only to be shrunk to 512 afterwards.
DRAFT_SIDE = 480


class ImageError(ValueError):
    """An upload that cannot be turned into a digit. ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024
    # A 4000×3000 photo is 12 Mpx; much more than this is a bomb or a mistake.
    max_pixels: int = 40_000_000
    # A 1×100000 strip passes the pixel limit but is no photo of a digit.
    max_side: int = 20_000


def decode(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Decode the first frame, upright, at most WORKING_SIDE px, in mode L, RGB, RGBA or F.

    Refuses what would cost unbounded memory before decompressing anything.
    """
    image, _ = open_upright(data, limits, draft=True)
    return working_size(image)


def working_size(image: Image.Image) -> Image.Image:
    """At most WORKING_SIDE px on its longer side (shrunk in place)."""
    if max(image.size) > WORKING_SIDE:
        # BOX averages every source pixel: the anti-aliasing a scanner or camera would do.
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
    return image


def open_upright(data: bytes, limits: Limits = Limits(), draft: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """The first frame, EXIF-rotated upright, in a working mode, and the upright image's full
    size: at full resolution, or with ``draft`` as small as the JPEG decoder can make it while
    keeping DRAFT_SIDE px. A colour JPEG comes in luma alone (the colour is never used)."""
    if not data:
        raise ImageError("EMPTY_IMAGE", "the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageError("IMAGE_TOO_LARGE", f"the image is {len(data)} bytes; the limit is {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image.size, limits)  # from the header: nothing is decompressed yet
            image.seek(0)  # multi-frame GIF/TIFF/WebP/APNG: the first frame is the upload
            width, height = image.size
            if png.plain(image, data, WORKING_SIDE**2) and (pixels := png.decode(data, image.mode)) is not None:
                return working_mode(pixels), (width, height)  # no EXIF chunk: upright as it is
            if image.format == "JPEG":
                # Only the luma plane of a colour JPEG (its Y is the ITU-R 601 luma to_grayscale
                # takes): libjpeg skips the chroma's IDCT, upsampling and colour conversion, 2.7×
                # less CPU for a 12 Mpx photo at full scale. With ``draft`` also a reduced scale:
                # a third to 40% less than at 1/4 in colour.
                scale = DRAFT_SIDE / max(width, height) if draft else 1.0
                box = (math.ceil(width * scale), math.ceil(height * scale))
                image.draft("L" if image.mode == "RGB" else image.mode, box)
            image.load()
            before = image.size
            ImageOps.exif_transpose(image, in_place=True)  # not a copy of every upright upload
            if image.size != before:  # turned a quarter: the full size turns with it
                width, height = height, width
            return working_mode(image), (width, height)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("NOT_AN_IMAGE", "the bytes are not an image in a supported format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("IMAGE_TOO_LARGE", "the image would decompress to too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError("CORRUPT_IMAGE", f"the image could not be decoded (truncated or corrupt): {exc}") from None


def _check_size(size: tuple[int, int], limits: Limits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError("NOT_AN_IMAGE", f"the image declares an impossible size {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageError(
            "IMAGE_TOO_LARGE", f"the image declares {width}x{height} pixels; the limit is {limits.max_pixels} pixels"
        )
    if max(width, height) > limits.max_side:
        raise ImageError("IMAGE_TOO_LARGE", f"the image is {width}x{height}; no side may exceed {limits.max_side} px")


def working_mode(image: Image.Image) -> Image.Image:
    """One of L, RGB, RGBA (8 bits) or F (wider), so that resizing averages real intensities.

    Palette and 1-bit images would be resized by nearest neighbour, 16-bit ones not at all on
    some paths, and CMYK/YCbCr/LAB need converting anyway.
    """
    mode = image.mode
    if mode in ("L", "RGB", "RGBA", "F"):
        return image
    if mode.startswith("I"):  # I, I;16, I;16B, ...: 16- or 32-bit integer grayscale
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        return Image.fromarray(values / top)
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, P without transparency

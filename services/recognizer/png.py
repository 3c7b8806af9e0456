"""Plain PNGs decoded by libspng (pyspng) instead of Pillow: the same pixels for under half the CPU.

A browser's canvas uploads as an 8-bit RGBA PNG, and decoding it was the largest single cost of
its preprocessing: a 280×280 one took Pillow ~1.2 ms and takes libspng ~0.5 ms. Only what both
decode to the same bytes takes this path: 8-bit grey, RGB or RGBA (libspng 0.7 has no grey +
alpha output), without a palette, a colour key (tRNS), animation or an EXIF chunk (Pillow
reads the orientation, on its own path). And only small images: pyspng holds the GIL while it
decodes, where Pillow lets other threads run, so photos and screenshots (more pixels than a
working copy) stay with Pillow on the worker threads. What libspng refuses goes to Pillow too,
which decodes it or says what is wrong with it, as before.
"""

from __future__ import annotations

import numpy as np
import pyspng
from PIL import Image, PngImagePlugin

MODES = frozenset({"L", "RGB", "RGBA"})  # Pillow's modes of PNG colour types 0, 2 and 6
# IHDR, the first chunk (Pillow has checked that), holds the bit depth at this offset of the
# file. Pillow opens 16-bit RGB(A) and 1-, 2- and 4-bit grey in these modes too.
_BIT_DEPTH = 24


def plain(image: Image.Image, data: bytes, max_pixels: int) -> bool:
    """Is ``image`` (opened by Pillow from ``data``, not loaded) a PNG that libspng decodes to
    the pixels Pillow would, with at most ``max_pixels``?"""
    return (
        isinstance(image, PngImagePlugin.PngImageFile)
        and image.mode in MODES
        and data[_BIT_DEPTH] == 8
        and image.width * image.height <= max_pixels
        and "transparency" not in image.info
        and image.n_frames == 1
        and b"eXIf" not in data  # anywhere: an EXIF chunk after the pixels is Pillow's to find
    )


def decode(data: bytes, mode: str) -> Image.Image | None:
    """A ``plain`` PNG's pixels as a Pillow image in ``mode``, or None when libspng refuses it."""
    try:
        pixels = pyspng.load(data)
    except RuntimeError:  # corrupt or truncated: Pillow's own error says which
        return None
    if pixels.dtype != np.uint8:
        return None
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return image if image.mode == mode else None

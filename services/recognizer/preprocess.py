"""Turn an uploaded image into the 28×28 array the model was trained on.

MNIST digits were made by a known recipe: white ink on black, the digit's bounding box scaled
so its longest side is 20 px (keeping the aspect ratio), then placed in a 28×28 field with its
centre of mass at the centre. A network trained on them only works on images made the same
way, so real uploads (dark ink on paper, phone photos, canvas drawings with a transparent
background, any size and position) go through that recipe here, after defensive decoding.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's own guard against decompression bombs is global; ours (Limits) is checked first and
# gives a clearer message, so PIL's only has to stop what ours would miss.
Image.MAX_IMAGE_PIXELS = 100_000_000

FIELD = 28
BOX = 20
# Images are shrunk to this before any numpy work: plenty of resolution for a digit, and it
# bounds memory and time whatever the upload's size.
WORKING_SIDE = 512
# Normalised intensity above which a pixel counts as ink.
INK_THRESHOLD = 0.3
# Intensity (after background removal) treated as paper texture, noise or JPEG ringing.
NOISE_FLOOR = 0.15
# Below this contrast between paper and the strongest ink there is no digit to see.
MIN_CONTRAST = 0.12


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


def decode(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Decode the first frame of an image, refusing what would cost unbounded memory."""
    if not data:
        raise ImageError("EMPTY_IMAGE", "the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageError("IMAGE_TOO_LARGE", f"the image is {len(data)} bytes; the limit is {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # from the header: nothing is decompressed yet
            if width <= 0 or height <= 0:
                raise ImageError("NOT_AN_IMAGE", f"the image declares an impossible size {width}x{height}")
            if width * height > limits.max_pixels:
                raise ImageError(
                    "IMAGE_TOO_LARGE",
                    f"the image declares {width}x{height} pixels; the limit is {limits.max_pixels} pixels",
                )
            image.seek(0)  # multi-frame GIF/TIFF/WebP: the first frame is the upload
            if image.format == "JPEG":
                # Let libjpeg decode at a reduced scale: far faster and smaller for big photos.
                image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))
            image.load()
            image = ImageOps.exif_transpose(image) or image
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("NOT_AN_IMAGE", "the bytes are not an image in a supported format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("IMAGE_TOO_LARGE", "the image would decompress to too many pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError("CORRUPT_IMAGE", f"the image could not be decoded (truncated or corrupt): {exc}") from None
    if max(image.size) > WORKING_SIDE:
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
    return image


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Luminance in [0, 1] (float32), with any transparency flattened onto a contrasting paper.

    A canvas drawing is often ink on a transparent background; whatever colour the hidden
    pixels have is meaningless, so the paper is chosen to contrast with the visible ink.
    """
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = np.asarray(image, dtype=np.float32)
        top = 65535.0 if gray.max(initial=0) > 255 else 255.0
        return np.clip(gray / top, 0.0, 1.0) if mode != "F" else _stretch(gray)
    if mode == "P" and "transparency" in image.info or mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode not in ("RGBA", "RGB", "L"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1, P without transparency
    if image.mode == "RGBA":
        rgba = np.asarray(image, dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        luma = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if alpha.min() >= 0.99:
            return luma
        visible = alpha > 0.5
        ink_is_dark = not visible.any() or float(luma[visible].mean()) < 0.5
        paper = 1.0 if ink_is_dark else 0.0
        return alpha * luma + (1.0 - alpha) * paper
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def to_ink(gray: np.ndarray) -> np.ndarray:
    """Ink intensity in [0, 1] on a zero background, whatever the polarity of the upload.

    The border is mostly paper, so its median says which polarity the image has and how
    bright the paper is; everything at paper level (plus a noise margin) becomes 0.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if float(np.median(border)) > 0.5:
        gray = 1.0 - gray
        border = 1.0 - border
    paper = float(np.median(border))
    peak = float(np.percentile(gray, 99.9))
    if peak - paper < MIN_CONTRAST:
        raise ImageError("NO_DIGIT_FOUND", "no digit found: the image has no visible ink")
    ink = np.clip((gray - paper) / (peak - paper), 0.0, 1.0)
    ink = np.clip((ink - NOISE_FLOOR) / (1.0 - NOISE_FLOOR), 0.0, 1.0)
    return ink.astype(np.float32)


def _ink_bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right; exclusive ends) of the ink, ignoring lone specks."""
    mask = ink > INK_THRESHOLD
    padded = np.pad(mask, 1).astype(np.uint8)
    # A pixel with no ink among its 8 neighbours is dust or noise, not part of a stroke.
    neighbours = sum(
        padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
    if mask.sum() > 4:
        mask &= neighbours > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ImageError("NO_DIGIT_FOUND", "no digit found: no stroke is large enough")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def center_in_field(ink: np.ndarray) -> np.ndarray:
    """Crop to the digit, scale its longest side to 20 px, centre its mass in 28×28."""
    top, bottom, left, right = _ink_bbox(ink)
    digit = ink[top:bottom, left:right]
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(
        Image.fromarray(digit, mode="F").resize(size, Image.Resampling.LANCZOS), dtype=np.float32
    )
    resized = np.clip(resized, 0.0, 1.0)
    peak = resized.max()
    if peak <= 0:
        raise ImageError("NO_DIGIT_FOUND", "no digit found: the ink vanished when scaled")
    resized /= peak

    h, w = resized.shape
    total = resized.sum()
    cy = float((resized.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((resized.sum(axis=0) * np.arange(w)).sum() / total)
    # MNIST puts the centre of mass at pixel index 14 (measured: 13.99, 14.00 on the test set),
    # i.e. half a pixel below and right of the geometric centre; so do we.
    oy = int(np.clip(round(FIELD / 2 - cy), 0, FIELD - h))
    ox = int(np.clip(round(FIELD / 2 - cx), 0, FIELD - w))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[oy : oy + h, ox : ox + w] = resized
    return field


def to_mnist(data: bytes, limits: Limits = Limits()) -> np.ndarray:
    """Encoded image bytes → float32 (28, 28) in [0, 1], white ink on black, MNIST-style."""
    return center_in_field(to_ink(to_grayscale(decode(data, limits))))

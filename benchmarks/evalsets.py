"""Realistic uploads for evaluating the recognizer end to end, generated deterministically.

Two families:

* **transformed MNIST**: MNIST *test* digits (never seen in training) turned into what people
  upload: any frame size from 28 to 2000 px, the digit small and off-centre, dark ink on light
  paper or tinted ink on tinted paper, uneven lighting, sensor noise, slight rotation, and every
  container the service accepts (PNG, JPEG at several qualities, palette GIF, BMP, WebP, 16-bit
  TIFF, CMYK JPEG, RGBA with a transparent background, EXIF-rotated JPEG).
* **printed**: the digits 0-9 rendered from every font on the machine (``fc-list`` finds them
  under /usr/share/fonts; a Debian image has at least DejaVu) plus the font Pillow ships, so
  the set exists even on a machine with no fonts at all.

Everything derives from one seed (and an upload's index), so a set is the same on every run and
a smaller set is a prefix of a larger one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
# Sets built from MNIST test digits; their combined accuracy is the ≥ 98% target.
MNIST_SETS = ("mnist-png", "scaled", "paper-photo", "tinted", "formats", "canvas")
PRINTED_SET = "printed"


@dataclass(frozen=True)
class Upload:
    set: str  # which evaluation set it belongs to (accuracy is reported per set)
    variant: str  # the container / treatment, for finer reporting and debugging
    label: int
    data: bytes
    content_type: str
    filename: str


# ---------------------------------------------------------------------------------------------
# Rendering helpers: everything is an "ink coverage" map a ∈ [0, 1] composed onto paper.


def _coverage(digit: np.ndarray, side: int, angle: float) -> np.ndarray:
    """An MNIST digit (uint8, white on black) as ink coverage, cropped, rotated and scaled."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    if angle:
        crop = crop.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    scale = side / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    return np.asarray(crop.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255.0


def _place(coverage: np.ndarray, frame: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Put the coverage map anywhere in a (height, width) frame, fully inside it."""
    height, width = frame
    canvas = np.zeros(frame, dtype=np.float32)
    h, w = coverage.shape
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    canvas[top : top + h, left : left + w] = coverage
    return canvas


def _lighting(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative illumination field: a linear gradient plus a vignette, as in a phone photo."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height - 1, 1) - 0.5, x / max(width - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    gradient = x * math.cos(angle) + y * math.sin(angle)  # in [-0.71, 0.71]
    vignette = x * x + y * y  # 0 at the centre, 0.5 in the corners
    return np.clip(1.0 - strength * (gradient + 0.71) / 1.42 - 0.5 * strength * vignette, 0.05, 1.0)


def _compose(coverage: np.ndarray, paper: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """RGB float in [0, 255]: ink over paper, proportionally to coverage (anti-aliased edges)."""
    a = coverage[..., None]
    return paper * (1.0 - a) + ink * a


def _noisy(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma:
        rgb = rgb + np.float32(sigma) * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Containers: each takes an RGB uint8 image and returns (variant, bytes, content type, suffix).

Encoded = tuple[str, bytes, str, str]


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _png(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    # Fast compression: the evaluation is about pixels, not about file size.
    return "png", _save(Image.fromarray(rgb), "PNG", compress_level=1), "image/png", "png"


def _jpeg(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    quality = int(rng.choice([30, 50, 75, 90]))
    return f"jpeg-q{quality}", _save(Image.fromarray(rgb), "JPEG", quality=quality), "image/jpeg", "jpg"


def _gif(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    palette = Image.fromarray(rgb).quantize(colors=int(rng.choice([32, 256])))
    return "gif-palette", _save(palette, "GIF"), "image/gif", "gif"


def _bmp(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    return "bmp", _save(Image.fromarray(rgb), "BMP"), "image/bmp", "bmp"


def _webp(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    return "webp", _save(Image.fromarray(rgb), "WEBP", quality=80), "image/webp", "webp"


def _tiff16(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    # A scanner's 16-bit grayscale: the full 0-65535 range, not 8-bit values in a 16-bit box.
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    wide = np.round(luma * 257.0).astype(np.uint16)
    return "tiff-16bit", _save(Image.fromarray(wide), "TIFF"), "image/tiff", "tif"


def _cmyk_jpeg(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    data = _save(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90)
    return "jpeg-cmyk", data, "image/jpeg", "jpg"


def _exif_jpeg(rgb: np.ndarray, rng: np.random.Generator) -> Encoded:
    """Stored sideways with an EXIF orientation tag, as phones do; upright only if it is honoured."""
    # Orientation 6 says "rotate 90° clockwise to display", so store the image 90° anticlockwise.
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return "jpeg-exif-rotated", _save(stored, "JPEG", quality=90, exif=exif), "image/jpeg", "jpg"


FORMATS: tuple[Callable[[np.ndarray, np.random.Generator], Encoded], ...] = (
    _gif, _bmp, _webp, _tiff16, _cmyk_jpeg, _exif_jpeg, _png, _jpeg,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Transformed MNIST


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _light_paper(rng: np.random.Generator) -> np.ndarray:
    return np.full(3, rng.uniform(200, 250), dtype=np.float32)


def _dark_ink(rng: np.random.Generator) -> np.ndarray:
    return np.full(3, rng.uniform(10, 70), dtype=np.float32)


def _tints(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coloured ink on coloured paper (sticky notes, coloured pens), with enough luminance contrast
    for a person to read it."""
    papers = ([250, 235, 140], [190, 225, 250], [250, 200, 215], [215, 245, 200], [245, 230, 210])
    inks = ([20, 40, 170], [170, 20, 30], [20, 110, 40], [90, 30, 120], [60, 60, 70])
    paper = np.asarray(papers[int(rng.integers(len(papers)))], dtype=np.float32)
    ink = np.asarray(inks[int(rng.integers(len(inks)))], dtype=np.float32)
    return paper * rng.uniform(0.85, 1.0), ink


def _frame(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    """(height, width, digit side): a frame of any aspect and the digit's longest side in it."""
    side = _log_uniform(rng, low, high)
    aspect = rng.uniform(0.6, 1.6)
    height, width = max(low, round(side * math.sqrt(aspect))), max(low, round(side / math.sqrt(aspect)))
    fraction = rng.uniform(0.2, 0.85)  # small and anywhere, up to nearly filling the frame
    return height, width, max(16, round(min(height, width) * fraction))


def _transformed(set_name: str, digit: np.ndarray, rng: np.random.Generator) -> tuple[str, np.ndarray | bytes]:
    """One MNIST digit as an upload of the given set: (variant or "", RGB image or final bytes)."""
    if set_name == "mnist-png":
        return "png-28", digit  # the untouched 28×28 digit: isolates what preprocessing costs
    if set_name == "canvas":
        # A web-canvas drawing: ink strokes on a fully transparent background, often transparent
        # black, so the hidden colour is the same as the ink's.
        height, width, side = _frame(rng, 64, 600)
        coverage = _place(_coverage(digit, side, rng.uniform(-8, 8)), (height, width), rng)
        ink = _dark_ink(rng) if rng.random() < 0.7 else np.asarray([30, 60, 200], dtype=np.float32)
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[..., :3] = ink.astype(np.uint8)
        rgba[..., 3] = np.round(coverage * 255).astype(np.uint8)
        return "png-rgba-transparent", _save(Image.fromarray(rgba), "PNG")
    # Uncompressed containers (BMP, TIFF) of big frames would exceed the 10 MiB upload limit.
    low, high = {"scaled": (28, 2000), "formats": (40, 1000)}.get(set_name, (120, 2000))
    height, width, side = _frame(rng, low, high)
    angle = rng.uniform(-10, 10) if set_name != "scaled" else 0.0
    coverage = _place(_coverage(digit, side, angle), (height, width), rng)
    if set_name in ("paper-photo", "tinted"):
        return "", photographed(coverage, set_name == "tinted", rng)
    rgb = _compose(coverage, np.broadcast_to(_light_paper(rng), (height, width, 3)), _dark_ink(rng))
    return "", _noisy(rgb, rng.uniform(0, 3), rng)


def photographed(coverage: np.ndarray, tinted: bool, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage as a phone photo of it (RGB uint8): dark ink on light paper or, ``tinted``,
    coloured ink on coloured paper; uneven lighting and sensor noise."""
    paper, ink = _tints(rng) if tinted else (_light_paper(rng), _dark_ink(rng))
    rgb = _compose(coverage, np.broadcast_to(paper, (*coverage.shape, 3)), ink)
    rgb = rgb * _lighting(coverage.shape, rng.uniform(0.0, 0.45), rng)[..., None]
    return _noisy(rgb, rng.uniform(0, 10), rng)


def transformed_mnist(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0) -> Iterator[Upload]:
    """``count`` uploads made from distinct MNIST test digits, spread evenly over MNIST_SETS."""
    order = np.random.default_rng(seed).permutation(len(images))[:count]
    for n, index in enumerate(order):
        rng = np.random.default_rng([seed, n])
        set_name = MNIST_SETS[n % len(MNIST_SETS)]
        variant, image = _transformed(set_name, images[index], rng)
        if isinstance(image, bytes):
            data, content_type, suffix = image, "image/png", "png"
        elif set_name == "mnist-png":
            data, content_type, suffix = _save(Image.fromarray(image), "PNG"), "image/png", "png"
        else:
            # "formats" walks through every container; the others are photos, mostly JPEG.
            if set_name == "formats":
                choose = FORMATS[(n // len(MNIST_SETS)) % len(FORMATS)]
            else:  # big photos are JPEGs (a noisy 2000 px PNG could exceed the upload limit)
                choose = _jpeg if max(image.shape) > 1000 or rng.random() < 0.7 else _png
            variant, data, content_type, suffix = choose(image, rng)
        yield Upload(set_name, variant, int(labels[index]), data, content_type, f"mnist-{index}.{suffix}")


# ---------------------------------------------------------------------------------------------
# Printed digits


def font_files() -> list[Path]:
    """Every TrueType/OpenType font installed, sorted so the set does not depend on listing order."""
    found = {p for d in FONT_DIRS if d.is_dir() for p in d.rglob("*") if p.suffix.lower() in (".ttf", ".otf")}
    return sorted(found)


def _fonts(size: int) -> list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]]:
    fonts: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = [
        ("pillow-default", ImageFont.load_default(size))  # Aileron, embedded in Pillow
    ]
    for path in font_files():
        try:
            font = ImageFont.truetype(str(path), size)
        except OSError:  # a font Pillow cannot read is not a reason to fail the evaluation
            continue
        if _has_digits(font):
            fonts.append((path.stem, font))
    return fonts


def _has_digits(font: ImageFont.FreeTypeFont) -> bool:
    """Whether the font draws ten different digits: an icon font (a web page's glyph font,
    installed with some packages) draws one placeholder box for all of them, and would be
    scored as if a box were a digit."""
    shapes = set()
    for digit in "0123456789":
        canvas = Image.new("L", (128, 128))
        ImageDraw.Draw(canvas).text((16, 8), digit, fill=255, font=font)
        shapes.add(canvas.tobytes())
    return len(shapes) == 10


def printed_digits(seed: int = 0, per_font: int = 10) -> Iterator[Upload]:
    """The digits 0-9 from every font, printed dark on light paper (or light on dark), photographed
    or scanned: a little rotation, noise and JPEG."""
    size = 96
    for f, (name, font) in enumerate(_fonts(size)):
        for digit in range(per_font):
            label = digit % 10
            rng = np.random.default_rng([seed, 1_000_003, f, digit])
            sheet = Image.new("L", (size * 2, size * 2), 0)
            ImageDraw.Draw(sheet).text((size // 2, size // 4), str(label), fill=255, font=font)
            sheet = sheet.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC)
            coverage = np.asarray(sheet, dtype=np.float32) / 255.0
            rows, cols = np.flatnonzero(coverage.any(axis=1)), np.flatnonzero(coverage.any(axis=0))
            if rows.size == 0:
                continue  # a font without digits
            glyph = coverage[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            height, width, side = _frame(rng, 48, 800)
            scale = side / max(glyph.shape)
            resized = Image.fromarray((glyph * 255).astype(np.uint8)).resize(
                (max(1, round(glyph.shape[1] * scale)), max(1, round(glyph.shape[0] * scale))),
                Image.Resampling.BICUBIC,
            )
            placed = _place(np.asarray(resized, dtype=np.float32) / 255.0, (height, width), rng)
            paper, ink = _light_paper(rng), _dark_ink(rng)
            if rng.random() < 0.2:
                paper, ink = ink, paper  # white text on a dark screen or slide
            rgb = _compose(placed, np.broadcast_to(paper, (height, width, 3)), ink)
            rgb = _noisy(rgb * _lighting((height, width), rng.uniform(0, 0.3), rng)[..., None], rng.uniform(0, 6), rng)
            variant, data, content_type, suffix = (_jpeg if rng.random() < 0.6 else _png)(rgb, rng)
            yield Upload(PRINTED_SET, f"{variant}:{name}", label, data, content_type, f"{name}-{label}.{suffix}")


def all_sets(images: np.ndarray, labels: np.ndarray, mnist_count: int, seed: int = 0) -> list[Upload]:
    return [*transformed_mnist(images, labels, mnist_count, seed), *printed_digits(seed)]

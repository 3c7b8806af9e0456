"""The uploads the benchmark sends, and the multipart bodies that carry them.

Made deterministically in memory (no files to commit besides tests/data/seven.png): a drawing
from the web page's canvas, a phone photo of a handwritten digit on paper, a phone screenshot.
The photo reuses the paper, lighting and noise of benchmarks/evalsets.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from benchmarks import evalsets

ROOT = Path(__file__).resolve().parents[2]
SEVEN = ROOT / "tests" / "data" / "seven.png"
BOUNDARY = "digitsbench7MA4YWxkTrZu0gW"
# A seven as the web page's pen would draw it on its 280×280 canvas: two strokes.
_SEVEN_STROKES = [[(70, 60), (210, 60), (120, 235)], [(105, 150), (185, 150)]]


@dataclass(frozen=True)
class Payload:
    name: str  # a short key: seven, canvas, ...
    description: str
    data: bytes
    content_type: str
    filename: str


def multipart(payload: Payload) -> tuple[bytes, str]:
    """(body, Content-Type) of a form with the one field ``image``, as curl -F sends it."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="image"; filename="{payload.filename}"\r\n'
        f"Content-Type: {payload.content_type}\r\n\r\n"
    ).encode()
    return (
        head + payload.data + f"\r\n--{BOUNDARY}--\r\n".encode(),
        f"multipart/form-data; boundary={BOUNDARY}",
    )


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _strokes(
    size: tuple[int, int], width: int, scale: float = 1.0, offset: tuple[int, int] = (0, 0)
) -> Image.Image:
    """The seven's strokes as an L mask (255 = ink), round-capped like the canvas pen."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for stroke in _SEVEN_STROKES:
        points = [(offset[0] + x * scale, offset[1] + y * scale) for x, y in stroke]
        draw.line(points, fill=255, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return mask


def seven() -> Payload:
    data = SEVEN.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        size, mode = image.size, image.mode
    return Payload(
        "seven", f"tests/data/seven.png, {size[0]}×{size[1]} {mode} PNG", data, "image/png", "seven.png"
    )


def canvas() -> Payload:
    """What the web page uploads: its 280×280 canvas, opaque white, #111 strokes 18 px wide, as RGBA PNG."""
    rgba = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    rgba.paste((17, 17, 17, 255), (0, 0), _strokes((280, 280), 18))
    return Payload(
        "canvas", "web page canvas, 280×280 RGBA PNG", _encode(rgba, "PNG"), "image/png", "canvas.png"
    )


def transparent_canvas() -> Payload:
    """A drawing app's export: dark strokes on a fully transparent 280×280 background."""
    rgba = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    rgba.paste((17, 17, 17, 255), (0, 0), _strokes((280, 280), 18))
    return Payload("canvas-transparent", "canvas, 280×280 RGBA PNG, transparent background",
                   _encode(rgba, "PNG"), "image/png", "drawing.png")  # fmt: skip


def _photo_rgb(width: int, height: int, noise: float, seed: int, digit: float = 0.45) -> np.ndarray:
    """A handwritten seven on lit paper, ``digit`` of the frame's shorter side tall: ink blurred
    like a pen, gradient light, sensor noise."""
    rng = np.random.default_rng(seed)
    side = min(width, height) * digit
    mask = _strokes(
        (width, height), max(3, round(side / 28)), side / 280, (round(width * 0.3), round(height * 0.25))
    )
    coverage = np.asarray(mask.filter(ImageFilter.GaussianBlur(side / 400)), dtype=np.float32) / 255.0
    paper = np.array([228, 224, 214], dtype=np.float32)  # slightly warm white
    rgb = evalsets._compose(coverage, np.broadcast_to(paper, (height, width, 3)), np.full(3, 35, np.float32))
    rgb = rgb * evalsets._lighting((height, width), 0.35, rng)[..., None]
    return evalsets._noisy(rgb, noise, rng)


def phone_photo(width: int = 2016, height: int = 1512, quality: int = 85, noise: float = 4.0) -> Payload:
    """A phone photo of paper, JPEG; sensor noise is what makes such files large."""
    data = _encode(Image.fromarray(_photo_rgb(width, height, noise, 1)), "JPEG", quality=quality)
    return Payload(f"photo-{width}x{height}", f"phone photo, {width}×{height} JPEG q{quality}",
                   data, "image/jpeg", "IMG_0001.jpg")  # fmt: skip


def small_digit_photo() -> Payload:
    """A 4032×3024 phone photo whose digit spans ~7% of the frame: found on the 1/8 draft, then
    read again from a crop of the full-resolution image (segment.read)."""
    data = _encode(Image.fromarray(_photo_rgb(4032, 3024, 7.0, 2, digit=0.07)), "JPEG", quality=70)
    return Payload("photo-small-digit", "phone photo, 4032×3024 JPEG q70, digit 7% of the frame",
                   data, "image/jpeg", "IMG_0003.jpg")  # fmt: skip


def phone_screenshot() -> Payload:
    """A screenshot of a note app: a digit drawn in a flat 1170×2532 screen, PNG."""
    rgb = Image.new("RGB", (1170, 2532), (242, 242, 247))
    ImageDraw.Draw(rgb).rectangle((0, 0, 1170, 260), fill=(255, 255, 255))
    rgb.paste((20, 20, 30), (0, 0), _strokes((1170, 2532), 30, 2.5, (230, 700)))
    return Payload(
        "screenshot", "phone screenshot, 1170×2532 RGB PNG", _encode(rgb, "PNG"), "image/png", "IMG_0002.png"
    )


def for_load() -> list[Payload]:
    """The uploads the HTTP load runs post, by name."""
    return [seven(), canvas()]


def for_preprocessing() -> list[Payload]:
    """Typical uploads for the preprocessing micro-benchmark (the target is ≤ 1 ms each), and a
    photo of a small digit, which costs a second, full-resolution decode."""
    return [
        seven(),
        canvas(),
        transparent_canvas(),
        phone_photo(),
        phone_photo(4032, 3024, 70, 7.0),
        small_digit_photo(),
        phone_screenshot(),
    ]

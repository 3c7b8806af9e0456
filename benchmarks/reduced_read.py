"""Does reading an upload on a reduced copy (segment._look_reduced) cost accuracy? An A/B in
process, on uploads the evaluation sets hold few of: MNIST test digits drawn big on canvases,
and phone photos larger than the working copy.

    python -m benchmarks.reduced_read --mnist ../shared/mnist

- single digits: MNIST test digits scaled to fill 256–512 px canvases, half of them dark ink on
  white, half black ink on a transparent background (a web canvas);
- numbers: two MNIST test digits side by side, apart or touching, on 280–400 px canvases;
- photos: MNIST test digits on lit paper (tinted one time in four), 600–2400 px frames in 4:3,
  the digit 12–85% of the shorter side, sensor noise, JPEG at quality 50–95: shrunk or drafted
  to the working copy, then read on its reduced copy when their digit is big enough there.

Each upload is read twice with the committed model, as the recognizer reads it (segment.read,
reading.answer): once as it is, once with the reduced look turned off, which is how every
upload was read before it existed. Prints both accuracies. Fixed seeds: the same uploads on
every run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import evalsets
from services.recognizer import mnist, reading, segment
from services.recognizer.model import DigitModel
from services.recognizer.decoding import ImageError
from tests.helpers import encode

ROOT = Path(__file__).resolve().parent.parent
Upload = tuple[bytes, str]  # encoded image, the number it shows
PHOTO_DIGITS = 5000  # the photos' first MNIST test digit


def _scaled(digit: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))


def single_digits(images: np.ndarray, labels: np.ndarray, count: int) -> list[Upload]:
    rng = np.random.default_rng(7)
    uploads = []
    for i in range(count):
        ink = _scaled(images[i], int(rng.choice([256, 280, 300, 400, 512])))
        if i % 2:
            rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
            rgba[..., 3] = ink  # black ink, its coverage in the alpha channel
            uploads.append((encode(rgba), str(labels[i])))
        else:
            uploads.append((encode(255 - ink), str(labels[i])))
    return uploads


def numbers(images: np.ndarray, labels: np.ndarray, count: int) -> list[Upload]:
    rng = np.random.default_rng(11)
    uploads = []
    for _ in range(count):
        first, second = rng.integers(0, len(images), 2)
        side = int(rng.choice([280, 300, 400]))
        size, gap = int(side * rng.uniform(0.38, 0.46)), int(rng.integers(-4, 12))  # gap < 0: touching
        ink = np.zeros((side, side), dtype=np.uint8)
        top, left = (side - size) // 2, (side - 2 * size - gap) // 2
        for n, index in enumerate((first, second)):
            x = left + n * (size + gap)
            window = ink[top : top + size, x : x + size]
            np.maximum(window, _scaled(images[index], size), out=window)
        uploads.append((encode(255 - ink), f"{labels[first]}{labels[second]}"))
    return uploads


def photos(images: np.ndarray, labels: np.ndarray, count: int) -> list[Upload]:
    rng = np.random.default_rng(13)
    uploads = []
    for i in range(count):
        n = PHOTO_DIGITS + i  # MNIST test digits the canvases above do not use
        side = evalsets._log_uniform(rng, 600, 2400)
        height, width = round(side * 0.75), round(side)
        if rng.random() < 0.5:  # held upright
            height, width = width, height
        digit = max(16, round(min(height, width) * rng.uniform(0.12, 0.85)))
        glyph = evalsets._coverage(images[n], digit, rng.uniform(-10, 10))
        coverage = evalsets._place(glyph, (height, width), rng)
        photo = Image.fromarray(evalsets.photographed(coverage, i % 4 == 3, rng))
        uploads.append((evalsets._save(photo, "JPEG", quality=int(rng.integers(50, 96))), str(labels[n])))
    return uploads


def accuracy(model: DigitModel, uploads: list[Upload]) -> float:
    """Share of uploads whose answer is their number (a refusal counts as wrong)."""
    threshold = model.metadata.get("calibration", {}).get("not_digit_threshold", 1.0)
    right = 0
    for data, expected in uploads:
        try:
            groups = segment.read(data)
            scores = list(model.predict(np.stack(reading.fields(groups))[..., None]))
            right += reading.answer(groups, scores, threshold, model.version, False).number == expected
        except ImageError:  # refused (no digit, or not a digit): wrong
            pass
    return right / len(uploads)


def without_reduced_look(run: Callable[[], float]) -> float:
    original = segment._look_reduced
    segment._look_reduced = lambda image, full_width: None
    try:
        return run()
    finally:
        segment._look_reduced = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "mnist")
    parser.add_argument("--digits", type=int, default=3000)
    parser.add_argument("--numbers", type=int, default=400)
    parser.add_argument("--photos", type=int, default=1000)
    args = parser.parse_args(argv)
    images = mnist.load_images(args.mnist / mnist.FILES["test_images"])
    labels = mnist.load_labels(args.mnist / mnist.FILES["test_labels"])
    model = DigitModel(str(ROOT / "services" / "recognizer" / "model"))
    for name, uploads in (
        (f"{args.digits:,} single digits on 256–512 px canvases", single_digits(images, labels, args.digits)),
        (f"{args.numbers:,} two-digit numbers on 280–400 px canvases", numbers(images, labels, args.numbers)),
        (f"{args.photos:,} phone photos, 600–2400 px JPEGs", photos(images, labels, args.photos)),
    ):
        reduced = accuracy(model, uploads)
        full = without_reduced_look(lambda: accuracy(model, uploads))  # noqa: B023 - called at once
        print(f"{name}: read right {100 * reduced:.2f}% with the reduced look, {100 * full:.2f}% without")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Preprocessing turns uploads into MNIST-style 28×28 fields and refuses bad ones with a reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.recognizer import decoding, preprocess
from services.recognizer.decoding import ImageError, Limits
from tests.helpers import DATA, encode, mnist_test, png_bomb


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


def test_mnist_digits_as_png_come_back_almost_exactly():
    # An MNIST digit is already what preprocessing makes, so it must come back unchanged but
    # for resampling rounding and the odd one-pixel centring difference. A fixed noise floor or
    # a high bounding-box threshold erased the anti-aliased edges and cost ~0.5% accuracy
    # (mean difference 0.012 then).
    images, _ = mnist_test(200)
    differences = np.stack([np.abs(preprocess.to_mnist(encode(image)) - image / 255.0) for image in images])
    assert differences.mean() < 0.004
    assert np.median(differences.max(axis=(1, 2))) < 0.01


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


def paper_photo(digit: np.ndarray, size: int = 300, paper: float = 235.0, ink: float = 40.0) -> np.ndarray:
    """A float photo of dark ink on light paper, the digit in the middle third of the frame."""
    coverage = np.asarray(Image.fromarray(digit).resize((size // 3, size // 3), Image.Resampling.BILINEAR)) / 255.0
    photo = np.full((size, size), paper, dtype=np.float32)
    third = size // 3
    photo[third : 2 * third, third : 2 * third] = paper * (1 - coverage) + ink * coverage
    return photo


def test_uneven_lighting_is_suppressed(digits):
    images, _ = digits
    photo = paper_photo(images[4])
    # A shadow across the page: the bottom-left corner gets less than a third of the light.
    rows, cols = np.indices(photo.shape) / photo.shape[0]
    shadowed = (photo * (1.0 - 0.7 * (rows + (1 - cols)) / 2)).astype(np.uint8)
    field = preprocess.to_mnist(encode(shadowed, "JPEG"))
    reference = preprocess.to_mnist(encode(images[4]))
    assert np.abs(field - reference).mean() < 0.05


def test_even_paper_is_its_own_level_without_a_fit_and_a_gradient_is_fitted(digits, monkeypatch):
    images, _ = digits
    ink = images[4].astype(np.float32) / 255.0
    fits = []
    monkeypatch.setattr(preprocess, "_least_squares", lambda a, b: fits.append(1) or np.linalg.lstsq(a, b, rcond=None)[0])
    even = 0.2 + 0.7 * ink  # light ink on paper at 0.2 everywhere
    assert preprocess._background(even) == pytest.approx(0.2)
    assert not fits
    rows = np.linspace(0.0, 0.1, 28, dtype=np.float32)[:, None]  # a tenth of the range, top to bottom
    surface = preprocess._background(np.maximum(even + rows, ink))
    assert fits and surface.shape == even.shape
    assert surface[-1].mean() - surface[0].mean() == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("shape", [(112, 112), (140, 100), (97, 512), (28, 28), (1, 40)])
def test_the_background_grid_is_pils_box_resize(shape):
    # The grid is two matrix products with weights taken from PIL; it must stay PIL's BOX resize.
    gray = np.random.default_rng(1).random(shape, dtype=np.float32)
    height, width = shape
    scale = min(1.0, preprocess.BACKGROUND_GRID / max(height, width))
    cells = (max(1, round(width * scale)), max(1, round(height * scale)))
    expected = np.asarray(Image.fromarray(gray).resize(cells, Image.Resampling.BOX))
    np.testing.assert_allclose(preprocess._coarse(gray), expected, rtol=0, atol=1e-6)


def test_a_lighting_gradient_without_a_digit_is_not_a_digit():
    rows = np.linspace(250, 110, 400, dtype=np.float32)[:, None]
    page = np.broadcast_to(rows, (400, 300)).astype(np.uint8)
    with pytest.raises(ImageError) as caught:
        preprocess.to_mnist(encode(page))
    assert caught.value.reason == "NO_DIGIT_FOUND"


def test_noise_and_a_dust_speck_do_not_move_the_crop(digits):
    images, _ = digits
    photo = paper_photo(images[5])
    photo += np.random.default_rng(0).normal(0, 8, photo.shape)
    photo[10:12, 280:282] = 30  # a speck of dust in the corner, far from the digit
    field = preprocess.to_mnist(encode(np.clip(photo, 0, 255).astype(np.uint8)))
    reference = preprocess.to_mnist(encode(images[5]))
    assert np.abs(field - reference).mean() < 0.05


def test_grey_paper_with_darker_ink_is_inverted(digits):
    images, _ = digits
    photo = paper_photo(images[6], paper=110.0, ink=10.0).astype(np.uint8)  # below mid-grey
    field = preprocess.to_mnist(encode(photo))
    assert np.abs(field - preprocess.to_mnist(encode(images[6]))).mean() < 0.04


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _as(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _exif_rotated(gray: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored 90° anticlockwise
    return _as(Image.fromarray(gray).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)


CONTAINERS = {
    "png-16bit": lambda g: _as(Image.fromarray(g.astype(np.uint16) * 257), "PNG"),
    "tiff-16bit": lambda g: _as(Image.fromarray(g.astype(np.uint16) * 257), "TIFF"),
    "jpeg-cmyk": lambda g: _as(Image.fromarray(_rgb(g)).convert("CMYK"), "JPEG", quality=95),
    "gif-palette": lambda g: _as(Image.fromarray(_rgb(g)).quantize(64), "GIF"),
    "bmp": lambda g: _as(Image.fromarray(_rgb(g)), "BMP"),
    "webp": lambda g: _as(Image.fromarray(_rgb(g)), "WEBP", quality=90),
    "la-opaque": lambda g: _as(Image.fromarray(g).convert("LA"), "PNG"),
    "one-bit": lambda g: _as(Image.fromarray(g).point(lambda v: 255 if v > 128 else 0).convert("1"), "PNG"),
    "jpeg-exif-rotated": _exif_rotated,
}


@pytest.mark.parametrize("container", CONTAINERS)
def test_every_container_gives_the_same_digit(digits, container):
    images, _ = digits
    photo = paper_photo(images[7], size=120).astype(np.uint8)  # 120 px: no scaling at decode
    field = preprocess.to_mnist(CONTAINERS[container](photo))
    reference = preprocess.to_mnist(encode(photo))
    assert np.abs(field - reference).mean() < 0.04


def test_exif_orientation_is_honoured(digits):
    images, _ = digits
    photo = paper_photo(images[8], size=120).astype(np.uint8)
    upright = preprocess.to_mnist(encode(photo))
    assert np.abs(preprocess.to_mnist(_exif_rotated(photo)) - upright).mean() < 0.04
    # Without the tag the same pixels are a sideways digit: the test above is not vacuous.
    sideways = _as(Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95)
    assert np.abs(preprocess.to_mnist(sideways) - upright).mean() > 0.08


def test_palette_image_with_a_transparent_background_is_flattened(digits):
    images, _ = digits
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(images[2] > 127, 255, 0)  # GIF transparency is all or nothing
    palette = Image.fromarray(rgba).convert("RGBA").quantize(4)
    field = preprocess.to_mnist(_as(palette, "PNG"))
    assert np.abs(field - preprocess.to_mnist(encode(np.where(images[2] > 127, 255, 0).astype(np.uint8)))).mean() < 0.03


def test_sample_image_in_the_readme_is_a_seven():
    field = preprocess.to_mnist((DATA / "seven.png").read_bytes())
    assert field.max() == pytest.approx(1.0)


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
        (encode(np.full((40, 40), 128, dtype=np.uint8), "JPEG"), "NO_DIGIT_FOUND"),
        (encode(np.zeros((1, 100_000), dtype=np.uint8)), "IMAGE_TOO_LARGE"),
        (png_bomb(1, 30_000), "IMAGE_TOO_LARGE"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "NOT_AN_IMAGE"),
    ],
    ids=[
        "empty", "text", "pdf", "bomb", "bomb-under-pil-limit", "blank-white", "blank-black", "blank-grey-jpeg",
        "absurd-width", "absurd-height-header", "png-signature-only",
    ],  # fmt: skip
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


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_other_truncated_formats_are_refused(digits, fmt):
    images, _ = digits
    photo = np.asarray(Image.fromarray(images[0]).resize((300, 300)))
    data = encode(photo, fmt)
    with pytest.raises(ImageError) as caught:
        preprocess.to_mnist(data[: len(data) // 2])
    assert caught.value.reason == "CORRUPT_IMAGE"


def test_first_frame_of_a_multi_page_tiff_is_used(digits):
    images, _ = digits
    pages = [Image.fromarray(255 - images[i]) for i in (3, 4)]
    data = _as(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    field = preprocess.to_mnist(data)
    assert np.abs(field - preprocess.to_mnist(encode(images[3]))).mean() < 0.02


def test_a_big_photo_is_decoded_within_bounded_memory(digits):
    # 4000×3000 JPEG: libjpeg decodes it at 1/8 scale, so the working image is small.
    images, _ = digits
    photo = np.full((3000, 4000), 230, dtype=np.uint8)
    digit = np.asarray(Image.fromarray(255 - images[9]).resize((1200, 1200)))
    photo[900:2100, 1400:2600] = digit
    image = decoding.decode(encode(photo, "JPEG"))
    assert max(image.size) <= decoding.WORKING_SIDE
    field = preprocess.to_mnist(encode(photo, "JPEG"))
    assert np.abs(field - preprocess.to_mnist(encode(images[9]))).mean() < 0.05


def test_a_phone_photo_is_decoded_in_luma_alone_and_drafted_at_an_eighth(digits):
    # 4032×3024, the commonest phone camera: libjpeg decodes only the luma plane, at 1/8 (504 px,
    # each pixel an 8×8 block's mean), not at 1/4 in colour to be shrunk to 512 afterwards.
    images, _ = digits
    rgb = np.full((3024, 4032, 3), (235, 225, 205), dtype=np.uint8)  # warm paper
    digit = np.asarray(Image.fromarray(255 - images[4]).resize((1000, 1000)))
    rgb[1000:2000, 1500:2500] = digit[..., None]
    data = encode(rgb, "JPEG")
    image, full = decoding.open_upright(data, draft=True)
    assert (image.mode, image.size, full) == ("L", (504, 378), (4032, 3024))
    # At full scale too (a small digit's crop): luma alone, 2.7× cheaper than in colour.
    assert decoding.open_upright(data)[0].mode == "L"
    field = preprocess.to_mnist(data)
    assert np.abs(field - preprocess.to_mnist(encode(images[4]))).mean() < 0.05


def test_light_ink_on_a_transparent_background_is_flattened_onto_dark_paper(digits):
    images, _ = digits
    rgba = np.full((28, 28, 4), 255, dtype=np.uint8)  # white strokes, hidden pixels white too
    rgba[..., 3] = images[6]
    flat = np.asarray(preprocess.flat_luma(Image.fromarray(rgba)))
    assert flat[images[6] == 0].max() == 0 and flat[images[6] == 255].min() == 255
    assert np.abs(preprocess.to_mnist(encode(rgba)) - preprocess.to_mnist(encode(images[6]))).mean() < 0.02


def test_upload_over_the_byte_limit_is_refused(digits):
    images, _ = digits
    data = encode(images[0])
    with pytest.raises(ImageError) as caught:
        preprocess.to_mnist(data, Limits(max_bytes=len(data) - 1))
    assert caught.value.reason == "IMAGE_TOO_LARGE"

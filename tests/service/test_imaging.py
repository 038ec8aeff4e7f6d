"""Preprocessing of uploads: real photos and drawings in any mode become MNIST-like 28x28 digits."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from service.exceptions import InvalidInput, PayloadTooLarge, UnsupportedImage
from service.imaging import center_of_mass, load_image, preprocess

from .helpers import png_bytes


def process(data: bytes, mode: str = "mnist") -> torch.Tensor:
    return preprocess(load_image(data, "'test.png'", max_pixels=10**8), mode)[0]  # type: ignore[arg-type]


def drawing(digit: torch.Tensor, size: tuple[int, int] = (200, 200)) -> Image.Image:
    """An MNIST digit drawn black on white at `size` (width, height): what a user's drawing looks like."""
    return Image.fromarray(255 - digit.numpy()).resize(size, Image.Resampling.BILINEAR)


def as_float(digit: torch.Tensor) -> torch.Tensor:
    return digit.float() / 255.0


def test_28x28_dark_background_digits_pass_through_unchanged(mnist_digits: torch.Tensor) -> None:
    for digit in mnist_digits[:10]:
        for mode in ("mnist", "resize", "none"):
            assert torch.equal(process(png_bytes(digit), mode), as_float(digit))


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 7])
def test_black_on_white_200x200_rgb_drawing_becomes_the_mnist_digit(mnist_digits: torch.Tensor, index: int) -> None:
    digit = mnist_digits[index]
    result = process(png_bytes(drawing(digit).convert("RGB")))
    assert (result - as_float(digit)).abs().mean() < 0.06  # inverted, cropped, fitted and centred
    assert torch.corrcoef(torch.stack([result.flatten(), as_float(digit).flatten()]))[0, 1] > 0.85


def test_result_is_fitted_into_20x20_and_centred_by_mass(mnist_digits: torch.Tensor) -> None:
    wide = Image.new("L", (400, 150), 255)
    wide.paste(drawing(mnist_digits[0], (60, 120)), (300, 10))  # off-centre, a different aspect ratio
    result = process(png_bytes(wide))
    rows, cols = (result > 0.2).any(dim=1).nonzero(), (result > 0.2).any(dim=0).nonzero()
    height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    assert max(height, width) in (19, 20, 21) and min(height, width) < 16  # aspect ratio kept
    cy, cx = center_of_mass(result)
    assert abs(cy - 14) <= 0.6 and abs(cx - 14) <= 0.6


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "CMYK", "YCbCr"])
def test_every_image_mode_gives_the_same_digit(mnist_digits: torch.Tensor, mode: str) -> None:
    base = drawing(mnist_digits[1], (120, 120))
    expected = process(png_bytes(base))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
        assert image.mode == "I;16"
    else:
        image = base.convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else "PNG"
    data = png_bytes(image, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    tolerance = 0.1 if mode == "1" else 0.03  # "1" is dithered black and white
    assert (process(data) - expected).abs().mean() < tolerance


@pytest.mark.parametrize("stroke", [0, 255])
def test_transparent_canvas_is_flattened_against_the_stroke_colour(mnist_digits: torch.Tensor, stroke: int) -> None:
    # strokes drawn on a transparent canvas whose hidden colour equals the stroke colour (as canvas apps do)
    digit = mnist_digits[2].numpy()
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = stroke
    rgba[..., 3] = digit  # the ink is the opacity
    result = process(png_bytes(Image.fromarray(rgba).resize((140, 140), Image.Resampling.BILINEAR)))
    assert (result - as_float(mnist_digits[2])).abs().mean() < 0.06


def test_exif_rotated_photo_is_turned_upright(mnist_digits: torch.Tensor) -> None:
    upright = drawing(mnist_digits[3], (160, 120)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera stored it turned 90 degrees; viewers rotate it clockwise
    stored = upright.rotate(90, expand=True)
    rotated = process(png_bytes(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert (rotated - process(png_bytes(upright, "JPEG", quality=95))).abs().mean() < 0.03


def test_light_background_is_inverted_dark_background_is_not(mnist_digits: torch.Tensor) -> None:
    digit = mnist_digits[4]
    assert (process(png_bytes(255 - digit.numpy())) - as_float(digit)).abs().mean() < 0.06
    assert process(png_bytes(255 - digit.numpy()), "none").mean() > 0.5  # `none` does not invert


def test_grey_photo_background_is_removed() -> None:
    photo = np.full((240, 320), 170, np.uint8) + np.random.default_rng(0).integers(0, 12, (240, 320), dtype=np.uint8)
    photo[60:180, 150:170] = 40  # a dark pencil "1" on grey paper with some noise
    result = process(png_bytes(photo, "JPEG", quality=90))
    assert result[:, :8].max() < 0.05 and result[:, -8:].max() < 0.05  # paper -> black
    assert result[14, 13:16].max() > 0.8  # ink -> light, in the middle


def test_resize_mode_scales_the_whole_image_without_centring() -> None:
    image = np.full((56, 56), 255, np.uint8)
    image[0:20, 0:20] = 0  # a dark block top-left
    result = process(png_bytes(image), "resize")
    assert result[:8, :8].min() > 0.9 and result[20:, 20:].max() < 0.05


def test_blank_images_stay_blank() -> None:
    for value in (0, 255, 128):
        assert process(png_bytes(np.full((64, 64), value, np.uint8))).max() == 0


def test_unreadable_and_oversized_uploads_are_rejected_with_their_name() -> None:
    with pytest.raises(UnsupportedImage, match="'test.png' is not a PNG or JPEG image"):
        load_image(b"%PDF-1.7 not an image", "'test.png'", max_pixels=10**6)
    with pytest.raises(UnsupportedImage, match="'test.png' is empty"):
        load_image(b"", "'test.png'", max_pixels=10**6)
    big = png_bytes(Image.new("L", (2000, 1000)))
    with pytest.raises(PayloadTooLarge, match="2000x1000"):
        load_image(big, "'test.png'", max_pixels=10**6)
    with pytest.raises(InvalidInput, match="needs exactly 28x28"):
        preprocess(Image.open(io.BytesIO(big)), "none")

"""Uploaded PNG/JPEG bytes -> a (1, 28, 28) tensor in [0, 1] that looks like an MNIST digit.

Users send photos and drawings, not MNIST tensors, so every upload goes through the same steps:

1. decode PNG or JPEG only (any size, any mode: L, LA, RGB, RGBA, P, I;16, CMYK ...), undo EXIF rotation;
2. flatten alpha onto a background that contrasts with what is drawn, convert to grayscale;
3. auto-invert: MNIST digits are light on a dark background, so light-background images are inverted;
4. `preprocess="mnist"` (default) normalises like MNIST did (LeCun et al. 1998): remove the background
   level, crop to the ink's bounding box, fit it into 20x20 keeping its aspect ratio and place it in
   28x28 so that its centre of mass is at the centre. `"resize"` only scales the whole image to
   28x28; `"none"` takes a 28x28 image as it is (grayscale, not inverted).

An image already at 28x28 with a dark background passes through unchanged in every mode.
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .exceptions import InvalidInput, PayloadTooLarge, UnsupportedImage

Preprocess = Literal["mnist", "resize", "none"]

FORMATS = ("PNG", "JPEG")
MAX_WORKING_SIDE = 1024  # larger uploads are shrunk first: a 28x28 result needs no more detail
MNIST_BOX = 20 / 28  # MNIST fits each digit into 20x20 of the 28x28 field
INK_THRESHOLD = 0.2  # after background removal, brighter pixels count as ink for the bounding box
MIN_CONTRAST = 0.05  # less than this between background and brightest pixel: a blank image
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_OTHER_FORMATS = {b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%PDF": "PDF"}


def load_image(data: bytes, name: str, *, max_pixels: int) -> Image.Image:
    """Decodes PNG or JPEG bytes with EXIF orientation applied; raises UnsupportedImage or PayloadTooLarge."""
    if not data:
        raise UnsupportedImage(f"{name} is empty: upload a PNG or JPEG image")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImage(f"{name} is not a PNG or JPEG image{_sniff(data)}: convert it to PNG or JPEG "
                               f"and upload it again") from None
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"{name} is too large to decode safely ({exc}); downscale it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedImage(f"{name} could not be read ({exc}): the file is damaged or truncated; "
                               f"export it again as PNG or JPEG") from None
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{name} is {width}x{height} = {width * height} pixels, over the limit of "
                              f"{max_pixels} (GVAE_MAX_IMAGE_PIXELS): downscale it and upload it again")
    if image.format == "JPEG":
        image.draft(None, (MAX_WORKING_SIDE, MAX_WORKING_SIDE))  # decode at 1/2, 1/4 or 1/8 scale when large
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedImage(f"{name} could not be decoded as {image.format} ({exc}): the file is damaged "
                               f"or truncated; export it again") from None


def to_grayscale(image: Image.Image) -> torch.Tensor:
    """Any Pillow mode -> (H, W) float32 luminance in [0, 1] with transparency flattened."""
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit grey PNGs
        wide = np.asarray(image, dtype=np.float32) / 65535.0
        image = Image.fromarray(np.clip(wide * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # P, 1, CMYK, YCbCr, LAB, HSV
    if max(image.size) > MAX_WORKING_SIDE:
        image.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.BOX)
    luminance = _as_unit(image.convert("L"))  # ITU-R 601-2 luma, ignoring alpha
    if image.mode != "RGBA":
        return luminance
    return flatten_alpha(luminance, _as_unit(image.getchannel("A")))


def flatten_alpha(luminance: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Composites onto white when the visible strokes are dark, onto black when they are light.

    Drawings often come as opaque strokes on a fully transparent canvas whose hidden colour is arbitrary:
    a fixed background would make dark strokes vanish on black (or light ones on white).
    """
    coverage = alpha.sum()
    if coverage == 0:
        return torch.zeros_like(luminance)  # nothing visible
    stroke = (luminance * alpha).sum() / coverage
    background = 1.0 if stroke < 0.5 else 0.0
    return luminance * alpha + background * (1.0 - alpha)


def border(x: torch.Tensor) -> torch.Tensor:
    """The pixels of the outer frame (about 3% of the shorter side, at least one pixel wide)."""
    h, w = x.shape
    k = max(1, round(0.03 * min(h, w)))
    return torch.cat([x[:k].flatten(), x[-k:].flatten(), x[:, :k].flatten(), x[:, -k:].flatten()])


def light_on_dark(gray: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Inverts an image whose background (the median of its frame) is light; returns (image, inverted)."""
    if border(gray).median() > 0.5:
        return 1.0 - gray, True
    return gray, False


def remove_background(x: torch.Tensor) -> torch.Tensor:
    """Maps the background level to 0 and the brightest pixel to 1.

    The level is the frame's median plus three robust standard deviations (1.4826 x the median absolute
    deviation), so paper texture and JPEG noise go to black, and ink touching the frame does not count.
    """
    frame = border(x)
    median = frame.median()
    background = median + 3 * 1.4826 * (frame - median).abs().median()
    peak = x.max()
    if peak - background < MIN_CONTRAST:
        return torch.zeros_like(x)
    return ((x - background) / (peak - background)).clamp_(0.0, 1.0)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) -> size, bilinear with anti-aliasing when shrinking."""
    if tuple(x.shape) == size:
        return x
    return F.interpolate(x[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]


def center_of_mass(x: torch.Tensor) -> tuple[float, float]:
    total = x.sum()
    ys = torch.arange(x.shape[0], dtype=x.dtype)
    xs = torch.arange(x.shape[1], dtype=x.dtype)
    return float((x.sum(dim=1) * ys).sum() / total), float((x.sum(dim=0) * xs).sum() / total)


def mnist_normalise(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop to the ink, fit into the 20/28 box keeping aspect, centre by centre of mass in `size`."""
    ink = x > INK_THRESHOLD
    if not ink.any():
        return torch.zeros(size)
    rows = ink.any(dim=1).nonzero().flatten()
    cols = ink.any(dim=0).nonzero().flatten()
    crop = x[int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]
    box = round(min(size) * MNIST_BOX)
    scale = box / max(crop.shape)
    patch_size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    patch = resize(crop, patch_size).clamp_(0.0, 1.0)
    cy, cx = center_of_mass(patch)
    # MNIST's centres of mass lie at pixel (14, 14) of 28x28 (index coordinates): shift by whole pixels.
    top = min(max(math.floor(size[0] / 2 - cy + 0.5), 0), size[0] - patch_size[0])
    left = min(max(math.floor(size[1] / 2 - cx + 0.5), 0), size[1] - patch_size[1])
    canvas = torch.zeros(size)
    canvas[top:top + patch_size[0], left:left + patch_size[1]] = patch
    return canvas


def preprocess(image: Image.Image, mode: Preprocess = "mnist", size: tuple[int, int] = (28, 28),
               name: str = "image") -> torch.Tensor:
    """A decoded image -> (1, H, W) float32 in [0, 1], light digit on dark background."""
    if mode == "none" and image.size != (size[1], size[0]):
        raise InvalidInput(f"{name} is {image.size[0]}x{image.size[1]}; preprocess=none needs exactly "
                           f"{size[1]}x{size[0]}: resize it, or use preprocess=mnist or preprocess=resize")
    gray = to_grayscale(image)
    if mode == "none":
        return gray.unsqueeze(0)
    gray, inverted = light_on_dark(gray)
    if tuple(gray.shape) == size and not inverted:
        return gray.unsqueeze(0)  # already MNIST-like: pass through unchanged
    gray = remove_background(gray)
    out = mnist_normalise(gray, size) if mode == "mnist" else resize(gray, size).clamp_(0.0, 1.0)
    return out.unsqueeze(0)


def preprocess_uploads(uploads: list[tuple[str, bytes]], mode: Preprocess, size: tuple[int, int], *,
                       max_pixels: int) -> torch.Tensor:
    """[(name, bytes), ...] -> (B, 1, H, W); the first bad upload raises with its name in the message."""
    return torch.stack([preprocess(load_image(data, name, max_pixels=max_pixels), mode, size, name)
                        for name, data in uploads])


def _as_unit(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)


def _sniff(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return " (it is WEBP)"
    for magic, fmt in _OTHER_FORMATS.items():
        if data.startswith(magic):
            return f" (it is {fmt})"
    return ""

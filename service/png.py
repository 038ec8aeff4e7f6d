"""Image batches -> one PNG grid: torchvision's make_grid, integer nearest-neighbour up-scaling, fast zlib.

Pixels become uint8 once, before the grid is built, so the grid and its up-scaled copy are one byte per
pixel; PNG bytes depend only on the pixels and the zlib level (same seed -> byte-identical PNG).

    png = grid_png(images, nrow=8, padding=2, scale=2)   # images: (B, 1, H, W) in [0, 1]
"""

from __future__ import annotations

import io
import math

import torch
from PIL import Image
from torchvision.utils import make_grid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAD_VALUE = 0  # grid lines in the background colour of MNIST digits


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Pixel probabilities in [0, 1] -> uint8, rounding like torchvision's save_image."""
    return images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def grid_uint8(images: torch.Tensor, *, nrow: int, padding: int) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1] -> (H', W') uint8 grid, `nrow` images per row (one image: no padding)."""
    grid = make_grid(to_uint8(images), nrow=nrow, padding=padding, pad_value=PAD_VALUE)  # (3, H', W')
    return grid[0]


def encode_png(gray: torch.Tensor, *, scale: int = 1, compress_level: int = 1) -> bytes:
    """(H, W) uint8 -> PNG bytes of a grayscale image up-scaled `scale` times (nearest neighbour)."""
    image = Image.fromarray(gray.contiguous().numpy())  # 2-D uint8 -> mode L
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def grid_png(images: torch.Tensor, *, nrow: int, padding: int = 2, scale: int = 1, compress_level: int = 1) -> bytes:
    return encode_png(grid_uint8(images, nrow=nrow, padding=padding), scale=scale, compress_level=compress_level)


def paired_rows(top: torch.Tensor, bottom: torch.Tensor, nrow: int) -> torch.Tensor:
    """Orders two equal batches for a grid of `nrow` columns: a row of `top`, then the matching row of `bottom`.

    The last pair of rows is filled up with blank images so that columns stay aligned.
    """
    if top.shape != bottom.shape:
        raise ValueError(f"paired_rows needs equal shapes, got {tuple(top.shape)} and {tuple(bottom.shape)}")
    nrow = min(nrow, top.shape[0])
    rows = []
    for start in range(0, top.shape[0], nrow):
        for half in (top[start:start + nrow], bottom[start:start + nrow]):
            rows.append(half)
            if half.shape[0] < nrow:
                rows.append(half.new_zeros((nrow - half.shape[0], *half.shape[1:])))
    return torch.cat(rows)


def grid_size(count: int, *, nrow: int, padding: int, scale: int = 1, height: int = 28,
              width: int = 28) -> tuple[int, int]:
    """(width, height) in pixels of the PNG `grid_png` makes from `count` images."""
    if count == 1:
        return width * scale, height * scale
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    return (columns * (width + padding) + padding) * scale, (rows * (height + padding) + padding) * scale

"""Image batches -> one PNG grid, fast: pixels go straight into the PNG's scanline buffer, which zlib reads as is.

The grid is laid out like torchvision's `make_grid` (`nrow` images per row, `padding` pixels around each, one
image without padding) and up-scaled by an integer `scale` (nearest neighbour), but it is built as a single
grayscale uint8 buffer whose first column holds each scanline's PNG filter byte (0, "None"), and that buffer
is handed to zlib without a copy: no torch -> numpy -> Pillow round trip. Images come in as uint8 pixels (the
runner quantises a whole batch at once, see `to_uint8`) or as [0, 1] floats quantised here, with the same
rounding either way. A single image takes a numpy path (torch's per-op overhead would dominate 784 pixels).
A low zlib level (default 1) is fast and MNIST grids, mostly black, compress well anyway. The PNG bytes depend
only on the pixels and the zlib level (same seed -> byte-identical PNG).

    png = grid_png(images, nrow=8, padding=2, scale=2)   # images: (B, 1, H, W) uint8, or floats in [0, 1]

PNG format: ISO/IEC 15948 (signature, IHDR, one IDAT, IEND; each chunk with its CRC-32).
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import torch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAD_VALUE = 0  # grid lines in the background colour of MNIST digits
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Pixel probabilities in [0, 1] -> uint8, rounding like torchvision's save_image."""
    return _rounded(images).to(torch.uint8)


def _rounded(images: torch.Tensor) -> torch.Tensor:
    """x * 255 + 0.5 clamped to [0, 255], in float: copying it into a uint8 tensor truncates = rounds."""
    return images.mul(255).add_(0.5).clamp_(0, 255)


def grid_layout(count: int, nrow: int) -> tuple[int, int]:
    """(rows, columns) of a grid of `count` images with at most `nrow` per row."""
    columns = min(nrow, count)
    return math.ceil(count / columns), columns


def grid_size(count: int, *, nrow: int, padding: int, scale: int = 1, height: int = 28,
              width: int = 28) -> tuple[int, int]:
    """(width, height) in pixels of the PNG `grid_png` makes from `count` images."""
    if count == 1:
        return width * scale, height * scale
    rows, columns = grid_layout(count, nrow)
    return (columns * (width + padding) + padding) * scale, (rows * (height + padding) + padding) * scale


def _fill_grid(out: torch.Tensor, images: torch.Tensor, nrow: int, padding: int) -> None:
    """Writes (B, 1, h, w) images (uint8, or floats to quantise) into the (H', W') uint8 view `out` (PAD_VALUE)."""
    count, _, h, w = images.shape
    pixels = images[:, 0] if images.dtype == torch.uint8 else _rounded(images[:, 0])  # (B, h, w)
    if count == 1:
        out.copy_(pixels[0])
        return
    rows, columns = grid_layout(count, nrow)
    # (rows, h + p, columns, w + p) cells of the grid's interior; a cell's image sits at its top left
    cells = out[padding:, padding:].unflatten(0, (rows, h + padding)).unflatten(2, (columns, w + padding))
    full = count // columns * columns
    if full:
        cells[:full // columns, :h, :, :w].copy_(pixels[:full].unflatten(0, (-1, columns)).permute(0, 2, 1, 3))
    if full < count:  # the last, incomplete row
        cells[rows - 1, :h, :count - full, :w].copy_(pixels[full:].permute(1, 0, 2))


def _single_rows(image: np.ndarray) -> np.ndarray:
    """One (h, w) image -> its scanlines, in numpy: a few microseconds, where torch's per-op overhead is ~5x."""
    rows = np.zeros((image.shape[0], image.shape[1] + 1), np.uint8)
    if image.dtype == np.uint8:
        rows[:, 1:] = image
    else:  # the same float32 arithmetic as `_rounded`, then truncation: the same bytes
        value = image * np.float32(255)
        value += np.float32(0.5)
        np.clip(value, 0, 255, out=value)
        np.copyto(rows[:, 1:], value, casting="unsafe")
    return rows


def grid_rows(images: torch.Tensor, *, nrow: int, padding: int, scale: int = 1) -> np.ndarray:
    """(B, 1, h, w) images -> the PNG scanlines: (H, 1 + W) uint8, column 0 the filter byte (0 = None).

    `images` are uint8 pixels, or pixel probabilities in [0, 1] that are quantised here.
    """
    images = images.detach().cpu()
    if images.shape[0] == 1 and scale == 1:
        return _single_rows(images[0, 0].numpy())
    width, height = grid_size(images.shape[0], nrow=nrow, padding=padding, scale=1, height=images.shape[2],
                              width=images.shape[3])
    if scale == 1:
        rows = torch.zeros((height, 1 + width), dtype=torch.uint8)  # PAD_VALUE and filter bytes are 0
        _fill_grid(rows[:, 1:], images, nrow, padding)
        return rows.numpy()
    grid = torch.full((height, width), PAD_VALUE, dtype=torch.uint8)
    _fill_grid(grid, images, nrow, padding)
    rows = torch.empty((height * scale, 1 + width * scale), dtype=torch.uint8)
    rows[:, 0] = 0
    scaled = rows[:, 1:].unflatten(0, (height, scale)).unflatten(2, (width, scale))  # (H, s, W, s)
    scaled.copy_(grid[:, None, :, None].expand(height, scale, width, scale))
    return rows.numpy()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(rows: np.ndarray, *, compress_level: int = 1) -> bytes:
    """(H, 1 + W) uint8 scanlines (filter byte first) -> bytes of an 8-bit grayscale PNG."""
    height, width = rows.shape[0], rows.shape[1] - 1
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale, deflate, no interlace
    data = zlib.compress(rows, compress_level)  # releases the GIL while it deflates
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _IEND


def grid_png(images: torch.Tensor, *, nrow: int, padding: int = 2, scale: int = 1, compress_level: int = 1) -> bytes:
    """(B, 1, h, w) uint8 pixels or [0, 1] floats -> PNG bytes of their grid, `nrow` per row, up-scaled `scale`
    times."""
    return encode_png(grid_rows(images, nrow=nrow, padding=padding, scale=scale), compress_level=compress_level)


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

"""Helpers the routes share: images -> a PNG grid answer.

A small grid is encoded on the model's worker thread as the last step of its request (`GridPng.finisher`):
~20-50 us there, instead of more work on the event loop or a hop to another thread. A large grid (up-scaled,
hundreds of images) is encoded in the thread pool, where zlib runs without the GIL and the model's thread
stays free for the next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from fastapi import Response
from starlette.concurrency import run_in_threadpool

from ..png import grid_png

SEED_HEADER = "X-Seed"
MODEL_THREAD_PNG_PIXELS = 16_384  # output pixels up to which a grid is encoded on the model's thread
IMAGE_PIXELS = 28 * 28

Arrange = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GridPng:
    """(B, 1, H, W) images in [0, 1] -> PNG bytes of their grid."""

    nrow: int
    padding: int
    scale: int
    compress_level: int

    def __call__(self, images: torch.Tensor) -> bytes:
        return grid_png(images, nrow=self.nrow, padding=self.padding, scale=self.scale,
                        compress_level=self.compress_level)

    def finisher(self, count: int, arrange: Arrange | None = None) -> Callable[[torch.Tensor], bytes] | None:
        """The last step to run on the model's thread for a grid of `count` images, or None when it is large."""
        if count * IMAGE_PIXELS * self.scale ** 2 > MODEL_THREAD_PNG_PIXELS:
            return None
        return self if arrange is None else lambda images: self(arrange(images))


async def png_response(result: torch.Tensor | bytes, png: GridPng, *, seed: int | None = None,
                       arrange: Arrange | None = None) -> Response:
    """An image/png answer from a finished PNG or from images still to encode; the seed goes into X-Seed."""
    if isinstance(result, torch.Tensor):
        result = await run_in_threadpool(png, arrange(result) if arrange else result)
    headers = {SEED_HEADER: str(seed)} if seed is not None else None
    return Response(content=result, media_type="image/png", headers=headers)

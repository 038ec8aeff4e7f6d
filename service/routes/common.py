"""Helpers the routes share: turning images into a PNG response off the event loop."""

from __future__ import annotations

import torch
from fastapi import Response
from starlette.concurrency import run_in_threadpool

from ..png import grid_png
from ..settings import Settings

SEED_HEADER = "X-Seed"


async def png_response(images: torch.Tensor, *, nrow: int, padding: int, scale: int, settings: Settings,
                       seed: int | None = None) -> Response:
    """(B, 1, H, W) in [0, 1] -> an image/png grid answer; the seed used goes into the X-Seed header."""
    png = await run_in_threadpool(grid_png, images, nrow=nrow, padding=padding, scale=scale,
                                  compress_level=settings.png_compress_level)
    headers = {SEED_HEADER: str(seed)} if seed is not None else None
    return Response(content=png, media_type="image/png", headers=headers)

"""Images from latents: GET /v1/sample draws them from the prior, POST /v1/decode takes them from the client."""

from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, Query, Response

from ..deps import GridDep, Hard, RunnerDep, SeedDep, SettingsDep, Temperature, check_count
from ..exceptions import InvalidInput
from ..schemas import PNG_RESPONSE, DecodeRequest, error_responses
from ..settings import MAX_N
from .common import png_response

router = APIRouter(prefix="/v1", tags=["sampling"])
DEFAULT_NROW = 8


@router.get("/sample", response_class=Response, responses={**PNG_RESPONSE, **error_responses(422, 503)},
            summary="n images from the prior, as a PNG grid")
async def sample(runner: RunnerDep, settings: SettingsDep, grid: GridDep, seed: SeedDep,
                 n: Annotated[int, Query(ge=1, le=MAX_N, description="number of images")] = 64,
                 temperature: Temperature = 1.0, hard: Hard = False) -> Response:
    """Latents from the uniform categorical prior, relaxed with Gumbel-Softmax at `temperature` (one-hot with
    `hard=true`), decoded to pixel probabilities."""
    check_count(n, settings)
    images = await runner.run(runner.engine.sample, n, temperature=temperature, hard=hard, seed=seed)
    return await png_response(images, nrow=grid.nrow or DEFAULT_NROW, padding=grid.padding, scale=grid.scale,
                              settings=settings, seed=seed)


@router.post("/decode", response_class=Response, responses={**PNG_RESPONSE, **error_responses(413, 422, 503)},
             summary="Decode codes or logits to a PNG grid")
async def decode(body: DecodeRequest, runner: RunnerDep, settings: SettingsDep, grid: GridDep, seed: SeedDep,
                 temperature: Temperature = 1.0, hard: Hard = False) -> Response:
    """`codes` decode their one-hot latents (temperature, hard and seed do not apply); `logits` are relaxed
    with Gumbel-Softmax at `temperature` (one-hot with `hard=true`) first."""
    engine = runner.engine
    check_count(body.count, settings)
    if body.codes is not None:
        codes = torch.tensor(rectangular(body.codes, "codes", engine.latent_dim), dtype=torch.long)  # (B, N)
        images = await runner.run(engine.decode_codes, codes)
    else:
        assert body.logits is not None
        for i, rows in enumerate(body.logits):
            rectangular(rows, f"logits[{i}]", engine.categorical_dim, rows=engine.latent_dim)
        logits = torch.tensor(body.logits, dtype=torch.float32)  # (B, N, K)
        images = await runner.run(engine.decode_logits, logits, temperature=temperature, hard=hard, seed=seed)
    return await png_response(images, nrow=grid.nrow or DEFAULT_NROW, padding=grid.padding, scale=grid.scale,
                              settings=settings, seed=seed if body.logits is not None else None)


def rectangular(lists: list, name: str, width: int, rows: int | None = None) -> list:
    """Checks that `lists` has `rows` lists (when given) of `width` items each, naming the first that is not."""
    if rows is not None and len(lists) != rows:
        raise InvalidInput(f"{name} has {len(lists)} rows; the model expects N={rows} rows of K={width} numbers")
    for i, row in enumerate(lists):
        if len(row) != width:
            what = f"N={width} codes" if rows is None else f"K={width} numbers"
            raise InvalidInput(f"{name}[{i}] has {len(row)} entries; the model expects {what} there")
    return lists

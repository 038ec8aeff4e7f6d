"""Images from latents: GET /v1/sample draws them from the prior, POST /v1/decode takes them from the client."""

from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, Query, Response

from ..deps import PngQuery, RunnerDep, SampleQuery, SettingsDep, check_count
from ..direct_route import DirectRoute
from ..exceptions import InvalidInput
from ..schemas import PNG_RESPONSE, DecodeRequest, error_responses
from .common import GridPng, png_response

router = APIRouter(prefix="/v1", tags=["sampling"], route_class=DirectRoute)  # the hot routes: see direct_route.py
DEFAULT_NROW = 8


@router.get("/sample", response_class=Response, responses={**PNG_RESPONSE, **error_responses(422, 503)},
            summary="n images from the prior, as a PNG grid")
async def sample(runner: RunnerDep, settings: SettingsDep, query: Annotated[SampleQuery, Query()]) -> Response:
    """Latents from the uniform categorical prior, relaxed with Gumbel-Softmax at `temperature` (one-hot with
    `hard=true`), decoded to pixel probabilities."""
    q, n, seed = query.check(settings), query.n, query.resolved_seed()
    check_count(n, settings)
    png = GridPng(q.nrow or DEFAULT_NROW, q.padding, q.scale, settings.png_compress_level)
    result = await runner.sample(n, temperature=q.temperature, hard=q.hard, seed=seed, pixels=True,
                                 finish=png.finisher(n))
    return await png_response(result, png, seed=seed)


@router.post("/decode", response_class=Response, responses={**PNG_RESPONSE, **error_responses(400, 413, 422, 503)},
             summary="Decode codes or logits to a PNG grid")
async def decode(body: DecodeRequest, runner: RunnerDep, settings: SettingsDep,
                 query: Annotated[PngQuery, Query()]) -> Response:
    """`codes` decode their one-hot latents (temperature, hard and seed do not apply); `logits` are relaxed
    with Gumbel-Softmax at `temperature` (one-hot with `hard=true`) first."""
    engine = runner.engine
    q, seed = query.check(settings), query.resolved_seed()
    check_count(body.count, settings)
    png = GridPng(q.nrow or DEFAULT_NROW, q.padding, q.scale, settings.png_compress_level)
    finish = png.finisher(body.count)
    if body.codes is not None:
        codes = torch.tensor(rectangular(body.codes, "codes", engine.latent_dim), dtype=torch.long)  # (B, N)
        result = await runner.decode_codes(codes, pixels=True, finish=finish)
    else:
        assert body.logits is not None
        for i, rows in enumerate(body.logits):
            rectangular(rows, f"logits[{i}]", engine.categorical_dim, rows=engine.latent_dim)
        logits = torch.tensor(body.logits, dtype=torch.float32)  # (B, N, K)
        result = await runner.decode_logits(logits, temperature=q.temperature, hard=q.hard, seed=seed, pixels=True,
                                                finish=finish)
    return await png_response(result, png, seed=seed if body.logits is not None else None)


def rectangular(lists: list, name: str, width: int, rows: int | None = None) -> list:
    """Checks that `lists` has `rows` lists (when given) of `width` items each, naming the first that is not."""
    if rows is not None and len(lists) != rows:
        raise InvalidInput(f"{name} has {len(lists)} rows; the model expects N={rows} rows of K={width} numbers")
    for i, row in enumerate(lists):
        if len(row) != width:
            what = f"N={width} codes" if rows is None else f"K={width} numbers"
            raise InvalidInput(f"{name}[{i}] has {len(row)} entries; the model expects {what} there")
    return lists

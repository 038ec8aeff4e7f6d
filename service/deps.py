"""Dependencies and shared query parameters of the routes, as `Annotated` aliases.

    async def sample(runner: RunnerDep, grid: GridDep, temperature: Temperature = 1.0): ...
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from model_store.registry import ModelStore

from .exceptions import InvalidInput, NotReady
from .runner import ModelRunner
from .settings import MAX_N, MAX_PADDING, MAX_SCALE, Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]

# ---------------------------------------------------------------------------- shared query parameters
Temperature = Annotated[float, Query(gt=0, le=100, allow_inf_nan=False,
                                     description="Gumbel-Softmax temperature tau in (0, 100]: low is sharp")]
Hard = Annotated[bool, Query(description="decode one-hot latents (argmax of each relaxed sample)")]
Seed = Annotated[int | None, Query(ge=0, le=2**63 - 1,
                                   description="random seed; the same seed gives the same output (byte-identical "
                                               "PNG). Absent: a random one, returned in the X-Seed header")]


def get_runner(request: Request) -> ModelRunner:
    """The loaded model's runner; 503 while it loads. Pins this request's X-Model-Version to it."""
    runner: ModelRunner | None = getattr(request.app.state, "runner", None)
    if runner is None:
        raise NotReady("the model is not loaded yet: retry in a few seconds (GET /readyz says when it is ready)")
    request.state.model_version = runner.engine.tag
    return runner


def get_store(request: Request) -> ModelStore:
    return request.app.state.store


RunnerDep = Annotated[ModelRunner, Depends(get_runner)]
StoreDep = Annotated[ModelStore, Depends(get_store)]


def resolve_seed(seed: Seed = None) -> int:
    return secrets.randbelow(2**63) if seed is None else seed


SeedDep = Annotated[int, Depends(resolve_seed)]


@dataclass(frozen=True)
class GridOptions:
    nrow: int | None  # None: the endpoint's default
    padding: int
    scale: int


def grid_options(
    settings: SettingsDep,
    nrow: Annotated[int | None, Query(ge=1, le=MAX_N, description="images per grid row (default: 8; on "
                                                                   "/v1/reconstruct, the number of uploads)")] = None,
    padding: Annotated[int, Query(ge=0, le=MAX_PADDING, description="pixels between grid cells")] = 2,
    scale: Annotated[int, Query(ge=1, le=MAX_SCALE, description="integer up-scaling of the grid, nearest "
                                                                "neighbour (GVAE_MAX_SCALE may lower the limit)")] = 1,
) -> GridOptions:
    if scale > settings.max_scale:
        raise InvalidInput(f"scale={scale} is over this server's limit of {settings.max_scale} (GVAE_MAX_SCALE)")
    return GridOptions(nrow=nrow, padding=padding, scale=scale)


GridDep = Annotated[GridOptions, Depends(grid_options)]


def check_count(count: int, settings: Settings, what: str = "images") -> None:
    """Rejects more images per request than GVAE_MAX_N allows (the schema states the hard ceiling)."""
    if count > settings.max_n:
        raise InvalidInput(f"{count} {what} requested; this server makes at most {settings.max_n} per request "
                           f"(GVAE_MAX_N): ask for fewer, or send several requests")

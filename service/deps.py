"""Dependencies and shared query parameters of the routes, as `Annotated` aliases and query models.

    async def sample(runner: RunnerDep, settings: SettingsDep, query: Annotated[SampleQuery, Query()]): ...

The PNG routes read their query parameters as one Pydantic model (FastAPI lists its fields as separate query
parameters in the OpenAPI schema, and names a bad one in a 422 as before): one validation per request instead
of one dependency per group of parameters, about a fifth of the event loop's work per request less.
"""

from __future__ import annotations

import random
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field

from model_store.registry import ModelStore

from .exceptions import InvalidInput, NotReady
from .runner import ModelRunner
from .settings import MAX_N, MAX_PADDING, MAX_SCALE, Settings


async def app_settings(request: Request) -> Settings:
    """The settings `create_app` was given. (Read from the app rather than through `dependency_overrides`,
    which makes FastAPI rebuild the overriding dependency's validators on every request: ~1 ms each.)"""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]

# ---------------------------------------------------------------------------- shared query parameters
TEMPERATURE_HELP = "Gumbel-Softmax temperature tau in (0, 100]: low is sharp"
HARD_HELP = "decode one-hot latents (argmax of each relaxed sample)"
SEED_HELP = ("random seed; the same seed gives the same output (byte-identical PNG). Absent: a random one, "
             "returned in the X-Seed header")
Temperature = Annotated[float, Query(gt=0, le=100, allow_inf_nan=False, description=TEMPERATURE_HELP)]
Hard = Annotated[bool, Query(description=HARD_HELP)]
Seed = Annotated[int | None, Query(ge=0, le=2**63 - 1, description=SEED_HELP)]


async def get_runner(request: Request) -> ModelRunner:
    """The loaded model's runner; 503 while it loads. Pins this request's X-Model-Version to it."""
    runner: ModelRunner | None = getattr(request.app.state, "runner", None)
    if runner is None:
        raise NotReady("the model is not loaded yet: retry in a few seconds (GET /readyz says when it is ready)")
    request.state.model_version = runner.engine.tag
    return runner


async def get_store(request: Request) -> ModelStore:
    return request.app.state.store


RunnerDep = Annotated[ModelRunner, Depends(get_runner)]
StoreDep = Annotated[ModelStore, Depends(get_store)]


# Seeds are published (X-Seed) and only need to differ: a Mersenne Twister seeded once from the OS is enough,
# and unlike `secrets` it makes no getrandom() call per request (one that releases the GIL to the model thread).
_seeds = random.Random()


def new_seed() -> int:
    return _seeds.getrandbits(63)


async def resolve_seed(seed: Seed = None) -> int:
    return new_seed() if seed is None else seed


SeedDep = Annotated[int, Depends(resolve_seed)]


class PngQuery(BaseModel):
    """Query parameters of every PNG grid answer: the grid's layout and the sampling options."""

    nrow: int | None = Field(None, ge=1, le=MAX_N, description="images per grid row (default: 8; on "
                                                                 "/v1/reconstruct, the number of uploads)")
    padding: int = Field(2, ge=0, le=MAX_PADDING, description="pixels between grid cells")
    scale: int = Field(1, ge=1, le=MAX_SCALE, description="integer up-scaling of the grid, nearest neighbour "
                                                          "(GVAE_MAX_SCALE may lower the limit)")
    temperature: float = Field(1.0, gt=0, le=100, allow_inf_nan=False, description=TEMPERATURE_HELP)
    hard: bool = Field(False, description=HARD_HELP)
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description=SEED_HELP)

    def check(self, settings: Settings) -> PngQuery:
        """Applies this server's limits below the schema's ceilings."""
        if self.scale > settings.max_scale:
            raise InvalidInput(f"scale={self.scale} is over this server's limit of {settings.max_scale} "
                               f"(GVAE_MAX_SCALE)")
        return self

    def resolved_seed(self) -> int:
        return new_seed() if self.seed is None else self.seed


class SampleQuery(PngQuery):
    n: int = Field(64, ge=1, le=MAX_N, description="number of images")


def check_count(count: int, settings: Settings, what: str = "images") -> None:
    """Rejects more images per request than GVAE_MAX_N allows (the schema states the hard ceiling)."""
    if count > settings.max_n:
        raise InvalidInput(f"{count} {what} requested; this server makes at most {settings.max_n} per request "
                           f"(GVAE_MAX_N): ask for fewer, or send several requests")

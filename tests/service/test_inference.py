"""The tensor-only InferenceEngine and its runner: seeds, one-hot latents, shapes, concurrency; and PNG grids."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torchvision.utils import make_grid

from model_store.registry import ModelStore
from service.exceptions import InvalidInput
from service.inference import InferenceEngine, resolve_device
from service.png import grid_png, grid_size, paired_rows
from service.runner import ModelRunner

from .helpers import open_png


@pytest.fixture(scope="module")
def engine(store_root: Path) -> InferenceEngine:
    return InferenceEngine.from_store(ModelStore(store_root), "gvae", "latest", resolve_device("cpu"))


def capture_latents(engine: InferenceEngine, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The latents each decoder call sees, without the all-zero rows that pad a tile."""
    seen: list[torch.Tensor] = []
    decode = engine.model.decode
    monkeypatch.setattr(engine.model, "decode", lambda z: seen.append(z[z.flatten(1).any(dim=1)]) or decode(z))
    return seen


def is_one_hot(z: torch.Tensor) -> bool:
    return bool(((z == 0) | (z == 1)).all() and (z.sum(dim=-1) == 1).all())


def test_hard_decodes_one_hot_latents_soft_does_not(engine: InferenceEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = capture_latents(engine, monkeypatch)
    images = torch.rand(3, 1, 28, 28)
    engine.sample(4, temperature=0.8, hard=True, seed=0)
    engine.reconstruct(images, temperature=0.8, hard=True, mode="sample", seed=0)
    engine.decode_logits(torch.randn(2, 30, 10), temperature=0.8, hard=True, seed=0)
    engine.decode_codes(torch.zeros(2, 30, dtype=torch.long))
    assert len(seen) == 4 and all(is_one_hot(z) for z in seen)
    seen.clear()
    engine.sample(4, temperature=0.8, hard=False, seed=0)
    engine.reconstruct(images, temperature=0.8, hard=False, mode="mean", seed=0)
    assert not any(is_one_hot(z) for z in seen)
    assert all(torch.allclose(z.sum(dim=-1), torch.ones(())) for z in seen)


def test_results_depend_on_the_seed_only(engine: InferenceEngine) -> None:
    torch.manual_seed(123)  # the global generator is not used
    a = engine.sample(5, temperature=1.0, hard=False, seed=7)
    torch.manual_seed(456)
    torch.rand(10)
    assert torch.equal(a, engine.sample(5, temperature=1.0, hard=False, seed=7))
    assert not torch.equal(a, engine.sample(5, temperature=1.0, hard=False, seed=8))
    assert a.shape == (5, 1, 28, 28) and a.device.type == "cpu" and a.min() >= 0 and a.max() <= 1


def test_encode_shapes(engine: InferenceEngine) -> None:
    encoding = engine.encode(torch.rand(3, 1, 28, 28), samples=4, temperature=0.5, seed=0)
    assert encoding.probs.shape == (3, 30, 10) and encoding.codes.shape == (3, 30)
    assert encoding.samples is not None and encoding.samples.shape == (3, 4, 30)
    assert engine.encode(torch.rand(1, 1, 28, 28), samples=0, temperature=0.5, seed=0).samples is None


@pytest.mark.parametrize("bad", [torch.rand(2, 28, 28), torch.rand(2, 1, 32, 32), torch.rand(0, 1, 28, 28)])
def test_wrong_image_shapes_are_invalid_input(engine: InferenceEngine, bad: torch.Tensor) -> None:
    with pytest.raises(InvalidInput, match="shape"):
        engine.reconstruct(bad, temperature=1.0, hard=False, mode="sample", seed=0)


def test_runner_serves_concurrent_calls_with_per_request_results(engine: InferenceEngine) -> None:
    async def main() -> list[torch.Tensor]:
        runner = ModelRunner(engine)
        try:
            return await asyncio.gather(*(runner.run(engine.sample, 3, temperature=1.0, hard=False, seed=s)
                                          for s in range(8)))
        finally:
            runner.close()

    results = asyncio.run(main())
    for seed, images in enumerate(results):
        assert torch.equal(images, engine.sample(3, temperature=1.0, hard=False, seed=seed))


def test_concurrent_http_requests_get_their_own_seeded_answers(client: TestClient) -> None:
    def get(seed: int) -> bytes:
        return client.get("/v1/sample", params={"n": 16, "seed": seed}).content

    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(get, range(8)))
    assert concurrent == [get(seed) for seed in range(8)]


# ------------------------------------------------------------------------------------------ PNG grids
@pytest.mark.parametrize(("count", "nrow", "padding"), [(1, 8, 2), (2, 8, 2), (9, 4, 0), (64, 8, 5)])
def test_grid_size_matches_torchvision(count: int, nrow: int, padding: int) -> None:
    grid = make_grid(torch.zeros(count, 1, 28, 28), nrow=nrow, padding=padding)
    assert grid_size(count, nrow=nrow, padding=padding) == (grid.shape[2], grid.shape[1])
    png = grid_png(torch.rand(count, 1, 28, 28), nrow=nrow, padding=padding, scale=3)
    assert open_png(png).size == grid_size(count, nrow=nrow, padding=padding, scale=3)


def test_grid_pixels_are_the_images_rounded_to_bytes() -> None:
    images = torch.rand(2, 1, 28, 28)
    pixels = torch.from_numpy(np.array(open_png(grid_png(images, nrow=2, padding=0, scale=2))))
    expected = (images * 255 + 0.5).clamp(0, 255).to(torch.uint8)[:, 0]
    assert torch.equal(pixels[::2, ::2], torch.cat(list(expected), dim=1))
    assert torch.equal(pixels[1::2, 1::2], pixels[::2, ::2])  # nearest-neighbour up-scaling


def test_paired_rows_alternates_and_pads_the_last_pair() -> None:
    top, bottom = torch.full((3, 1, 2, 2), 1.0), torch.full((3, 1, 2, 2), 2.0)
    tiles = paired_rows(top, bottom, nrow=2)
    assert tiles[:, 0, 0, 0].tolist() == [1, 1, 2, 2, 1, 0, 2, 0]

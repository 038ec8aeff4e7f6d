"""Shared fixtures: a small real MNIST fixture and tiny seeded models in temporary stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_store import GumbelVAE, ModelStore, VAEConfig

FIXTURE_MNIST = Path(__file__).parent / "fixtures" / "mnist"
REPO_ROOT = Path(__file__).resolve().parent.parent

# One intra-op thread: on a 2-core machine the server threads, subprocesses and the test process share the cores,
# and oversubscribed OpenMP threads slow every test down several-fold.
torch.set_num_threads(1)


@pytest.fixture
def mnist_dir() -> Path:
    """A torchvision MNIST root with 600 train / 100 test real images."""
    return FIXTURE_MNIST


@pytest.fixture
def small_config() -> VAEConfig:
    return VAEConfig(hidden_dims=(64, 32), latent_dim=6, categorical_dim=4)


def save_seeded_model(store: ModelStore, config: VAEConfig, seed: int = 0, name: str = "gvae", **metadata) -> int:
    torch.manual_seed(seed)
    with store.register(name) as draft:
        draft.save_weights(GumbelVAE(config))
        draft.metadata.update(metadata)
    assert draft.version is not None
    return draft.version


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")

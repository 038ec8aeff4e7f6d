"""Fixtures for the service tests: a tmp_path store holding a seeded (untrained) model, an app served from it
with its lifespan run (`with TestClient(app)`), and real MNIST digits. Helpers live in helpers.py.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from service.app import create_app
from service.settings import Settings, get_settings

from .helpers import make_settings, register_seeded_model

with warnings.catch_warnings():  # starlette's TestClient asks for httpx2, which is not a dependency yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

torch.set_num_threads(1)  # small models; the test machine has two cores and other work to do

MNIST_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mnist"


@pytest.fixture(scope="session", autouse=True)
def _no_gvae_environment() -> Iterator[None]:
    """Only GVAE_STORE_ROOT may come from the environment (it finds the bundled model); tests set the rest."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [v for v in os.environ if v.startswith("GVAE_") and v != "GVAE_STORE_ROOT"]:
            patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    register_seeded_model(root, seed=0)
    return root


@pytest.fixture(scope="session")
def settings(store_root: Path) -> Settings:
    return make_settings(store_root)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of an app whose lifespan has run: the seeded model is loaded and warmed up."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def mnist_digits() -> torch.Tensor:
    """The first 100 MNIST test images: (100, 28, 28) uint8, light digits on black."""
    return torchvision.datasets.MNIST(str(MNIST_FIXTURE), train=False, download=False).data

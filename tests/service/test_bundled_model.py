"""The trained default model (model_store/store/gvae, or $GVAE_STORE_ROOT): skipped until one is bundled."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app

from .helpers import make_settings, needs_bundled_model, png_array, png_bytes, upload

pytestmark = needs_bundled_model


@pytest.fixture(scope="module")
def bundled() -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(None))) as client:  # None: the default store
        yield client


def reconstruct_one(client: TestClient, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(preprocessed input, mean reconstruction) of one upload, each (28, 28) in [0, 1]."""
    r = client.post("/v1/reconstruct", params={"mode": "mean", "padding": 0}, files=upload(data))
    assert r.status_code == 200, r.text
    grid = png_array(r.content)
    return grid[:28], grid[28:]


def test_real_mnist_digits_are_reconstructed_with_low_error(bundled: TestClient, mnist_digits: torch.Tensor) -> None:
    errors, baseline = [], []
    for i in range(10):
        digit = mnist_digits[i].numpy() / 255.0
        shown, recon = reconstruct_one(bundled, png_bytes(mnist_digits[i].numpy()))
        np.testing.assert_allclose(shown, digit, atol=1 / 255)
        errors.append(np.abs(recon - digit).mean())
        baseline.append(np.abs(recon - mnist_digits[i + 1].numpy() / 255.0).mean())  # a different digit
    assert max(errors) < 0.1 and np.mean(errors) < 0.06, errors
    assert all(e < b for e, b in zip(errors, baseline, strict=True))


def test_drawn_digit_is_reconstructed_like_the_original(bundled: TestClient, mnist_digits: torch.Tensor) -> None:
    digit = mnist_digits[0]
    drawn = Image.fromarray(255 - digit.numpy()).resize((200, 200), Image.Resampling.BILINEAR).convert("RGB")
    _, recon = reconstruct_one(bundled, png_bytes(drawn))
    assert np.abs(recon - digit.numpy() / 255.0).mean() < 0.08


def test_samples_are_not_blank(bundled: TestClient) -> None:
    grid = png_array(bundled.get("/v1/sample", params={"n": 16, "seed": 0, "temperature": 0.5}).content)
    assert 0.05 < grid.mean() < 0.5

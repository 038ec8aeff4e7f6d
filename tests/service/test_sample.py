"""GET /v1/sample: n images from the prior as a PNG grid."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.png import grid_size

from .helpers import PNG_SIGNATURE, open_png, png_array


@pytest.mark.parametrize(("n", "nrow", "scale", "padding"),
                         [(1, 8, 1, 2), (4, 2, 1, 2), (10, 3, 2, 0), (64, 8, 1, 2), (17, 16, 3, 1), (256, 16, 1, 2)])
def test_sample_returns_png_grid_of_expected_size(client: TestClient, n: int, nrow: int, scale: int,
                                                  padding: int) -> None:
    r = client.get("/v1/sample", params={"n": n, "nrow": nrow, "scale": scale, "padding": padding, "seed": 1})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    image = open_png(r.content)
    assert image.mode == "L"
    assert image.size == grid_size(n, nrow=nrow, padding=padding, scale=scale)


def test_sample_defaults_to_64_images_in_rows_of_8(client: TestClient) -> None:
    r = client.get("/v1/sample")
    assert r.status_code == 200
    assert open_png(r.content).size == grid_size(64, nrow=8, padding=2) == (242, 242)
    assert int(r.headers["x-seed"]) >= 0  # a random seed, reported so the grid can be drawn again


def test_same_seed_gives_byte_identical_png(client: TestClient) -> None:
    first = client.get("/v1/sample", params={"n": 16, "seed": 42, "temperature": 0.7})
    again = client.get("/v1/sample", params={"n": 16, "seed": 42, "temperature": 0.7})
    other = client.get("/v1/sample", params={"n": 16, "seed": 43, "temperature": 0.7})
    assert first.content == again.content
    assert first.content != other.content
    assert first.headers["x-seed"] == "42"


def test_unseeded_requests_differ_and_can_be_repeated_with_their_seed(client: TestClient) -> None:
    a, b = client.get("/v1/sample?n=4"), client.get("/v1/sample?n=4")
    assert a.content != b.content
    assert client.get("/v1/sample", params={"n": 4, "seed": a.headers["x-seed"]}).content == a.content


def test_temperature_changes_the_output(client: TestClient) -> None:
    cold = png_array(client.get("/v1/sample", params={"n": 8, "seed": 3, "temperature": 0.1}).content)
    hot = png_array(client.get("/v1/sample", params={"n": 8, "seed": 3, "temperature": 5.0}).content)
    assert np.abs(cold - hot).mean() > 1e-3


def test_hard_samples_decode_one_hot_latents_so_temperature_does_not_matter(client: TestClient) -> None:
    # argmax((g) / tau) does not depend on tau: with one-hot latents, the same noise gives the same images
    cold = client.get("/v1/sample", params={"n": 8, "seed": 3, "temperature": 0.1, "hard": True})
    hot = client.get("/v1/sample", params={"n": 8, "seed": 3, "temperature": 5.0, "hard": True})
    soft = client.get("/v1/sample", params={"n": 8, "seed": 3, "temperature": 5.0, "hard": False})
    assert cold.content == hot.content
    assert hot.content != soft.content


@pytest.mark.parametrize("params", [
    {"n": 0}, {"n": 257}, {"n": "many"},
    {"temperature": 0}, {"temperature": -1}, {"temperature": 100.5}, {"temperature": "nan"}, {"temperature": "inf"},
    {"scale": 0}, {"scale": 9}, {"nrow": 0}, {"padding": -1}, {"padding": 17}, {"seed": -5}, {"hard": "maybe"},
])
def test_bad_parameters_answer_422_naming_the_parameter(client: TestClient, params: dict) -> None:
    r = client.get("/v1/sample", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    (name,) = params
    assert f"'{name}'" in r.json()["detail"]

"""POST /v1/reconstruct and POST /v1/encode: uploaded PNG/JPEG images through the model."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.png import grid_size

from .helpers import PNG_SIGNATURE, open_png, png_array, png_bytes, upload

N, K = 30, 10


@pytest.fixture(scope="module")
def digit_pngs(mnist_digits) -> list[bytes]:
    return [png_bytes(d.numpy()) for d in mnist_digits[:8]]


# ------------------------------------------------------------------------------------------ reconstruct
@pytest.mark.parametrize(("count", "nrow", "scale", "expected_tiles", "columns"),
                         [(1, None, 1, 2, 1), (3, None, 2, 6, 3), (5, 2, 1, 12, 2), (8, 8, 3, 16, 8)])
def test_reconstruct_returns_inputs_above_reconstructions(client: TestClient, digit_pngs: list[bytes], count: int,
                                                          nrow: int | None, scale: int, expected_tiles: int,
                                                          columns: int) -> None:
    params = {"scale": scale, "seed": 0} | ({"nrow": nrow} if nrow else {})
    r = client.post("/v1/reconstruct", params=params, files=upload(*digit_pngs[:count]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    assert open_png(r.content).size == grid_size(expected_tiles, nrow=columns, padding=2, scale=scale)


def test_top_row_shows_the_preprocessed_inputs(client: TestClient, mnist_digits) -> None:
    # 28x28 dark-background digits pass through preprocessing unchanged, so the top row is the upload itself
    digits = mnist_digits[:3].numpy()
    r = client.post("/v1/reconstruct", params={"padding": 0}, files=upload(*(png_bytes(d) for d in digits)))
    grid = np.asarray(open_png(r.content))
    assert grid.shape == (56, 84)
    assert np.array_equal(grid[:28], np.concatenate(list(digits), axis=1))


def test_reconstruct_is_deterministic_per_seed_and_mean_mode_needs_no_seed(client: TestClient,
                                                                           digit_pngs: list[bytes]) -> None:
    files = upload(*digit_pngs[:4])
    a = client.post("/v1/reconstruct", params={"seed": 9}, files=files).content
    b = client.post("/v1/reconstruct", params={"seed": 9}, files=files).content
    c = client.post("/v1/reconstruct", params={"seed": 10}, files=files).content
    assert a == b != c
    mean1 = client.post("/v1/reconstruct", params={"mode": "mean", "seed": 1}, files=files).content
    mean2 = client.post("/v1/reconstruct", params={"mode": "mean", "seed": 2}, files=files).content
    assert mean1 == mean2


def test_reconstruct_temperature_changes_the_output(client: TestClient, digit_pngs: list[bytes]) -> None:
    files = upload(*digit_pngs[:4])
    cold = png_array(client.post("/v1/reconstruct", params={"seed": 1, "temperature": 0.1}, files=files).content)
    hot = png_array(client.post("/v1/reconstruct", params={"seed": 1, "temperature": 5}, files=files).content)
    assert np.abs(cold - hot).mean() > 1e-3


def test_accepts_jpeg_and_large_rgb_drawings(client: TestClient) -> None:
    drawing = Image.new("RGB", (300, 200), "white")
    drawing.paste((0, 0, 0), (140, 40, 160, 160))  # a black "1" on white paper
    files = upload(png_bytes(drawing, "JPEG", quality=90), name="photo.jpg", content_type="image/jpeg")
    r = client.post("/v1/reconstruct", params={"padding": 0}, files=files)
    assert r.status_code == 200, r.text
    top = png_array(r.content)[:28]
    assert top[14, 14] > 0.9 and top[14, 2] < 0.05  # inverted, centred, light ink on black


# ------------------------------------------------------------------------------------------ encode
def test_encode_returns_probabilities_codes_and_samples(client: TestClient, digit_pngs: list[bytes]) -> None:
    r = client.post("/v1/encode", params={"samples": 3, "seed": 4}, files=upload(*digit_pngs[:2]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["latent_dim"] == N and body["categorical_dim"] == K and body["seed"] == 4
    assert body["model"] == r.headers["x-model-version"] == "gvae:1"
    assert [item["filename"] for item in body["results"]] == ["0-digit.png", "1-digit.png"]
    for item in body["results"]:
        probs = np.array(item["probs"])
        assert probs.shape == (N, K)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert item["code"] == probs.argmax(axis=1).tolist()
        samples = np.array(item["samples"])
        assert samples.shape == (3, N) and samples.min() >= 0 and samples.max() < K


def test_encode_samples_are_seeded_and_absent_unless_asked(client: TestClient, digit_pngs: list[bytes]) -> None:
    files = upload(digit_pngs[0])
    first = client.post("/v1/encode", params={"samples": 5, "seed": 8}, files=files).json()
    again = client.post("/v1/encode", params={"samples": 5, "seed": 8}, files=files).json()
    assert first["results"][0]["samples"] == again["results"][0]["samples"]
    assert client.post("/v1/encode", files=files).json()["results"][0]["samples"] is None


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("route", ["/v1/reconstruct", "/v1/encode"])
def test_text_file_named_png_answers_415(client: TestClient, route: str) -> None:
    r = client.post(route, files=[("files", ("notes.png", b"just some text\n", "image/png"))])
    assert r.status_code == 415
    assert "'notes.png' is not a PNG or JPEG image" in r.json()["detail"]


@pytest.mark.parametrize(("data", "fmt"), [
    (png_bytes(Image.new("L", (28, 28)), "GIF"), "GIF"),
    (png_bytes(Image.new("RGB", (28, 28)), "BMP"), "BMP"),
    (png_bytes(Image.new("RGB", (28, 28)), "WEBP"), "WEBP"),
])
def test_other_image_formats_answer_415_naming_the_format(client: TestClient, data: bytes, fmt: str) -> None:
    r = client.post("/v1/encode", files=[("files", ("digit.png", data, "image/png"))])
    assert r.status_code == 415
    assert f"it is {fmt}" in r.json()["detail"] and "convert it to PNG or JPEG" in r.json()["detail"]


def test_empty_and_truncated_files_answer_415(client: TestClient, digit_pngs: list[bytes]) -> None:
    jpeg = png_bytes(Image.new("RGB", (64, 64), "white"), "JPEG")
    for data in (b"", digit_pngs[0][:60], jpeg[:200]):
        r = client.post("/v1/encode", files=[("files", ("x.png", data, "image/png"))])
        assert r.status_code == 415, (len(data), r.text)
        assert "'x.png'" in r.json()["detail"]


def test_missing_files_field_answers_422(client: TestClient, digit_pngs: list[bytes]) -> None:
    r = client.post("/v1/reconstruct", files=[("file", ("a.png", digit_pngs[0], "image/png"))])
    assert r.status_code == 422
    assert "'files'" in r.json()["detail"]


@pytest.mark.parametrize(("params", "name"), [
    ({"temperature": 0}, "temperature"), ({"temperature": "nan"}, "temperature"), ({"mode": "median"}, "mode"),
    ({"preprocess": "crop"}, "preprocess"), ({"scale": 9}, "scale"), ({"samples": -1}, "samples"),
])
def test_bad_parameters_answer_422(client: TestClient, digit_pngs: list[bytes], params: dict, name: str) -> None:
    route = "/v1/encode" if "samples" in params else "/v1/reconstruct"
    r = client.post(route, params=params, files=upload(digit_pngs[0]))
    assert r.status_code == 422
    assert f"'{name}'" in r.json()["detail"]


def test_preprocess_none_needs_28x28(client: TestClient) -> None:
    r = client.post("/v1/encode", params={"preprocess": "none"}, files=upload(png_bytes(Image.new("L", (56, 56)))))
    assert r.status_code == 422
    assert "needs exactly 28x28" in r.json()["detail"]

"""POST /v1/decode: integer codes or logits -> a PNG grid."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.png import grid_size

from .helpers import PNG_SIGNATURE, open_png, png_array, png_bytes, upload

N, K = 30, 10


@pytest.mark.parametrize(("count", "nrow", "scale"), [(1, 8, 1), (3, 8, 2), (12, 5, 1)])
def test_decode_codes_returns_png_grid(client: TestClient, count: int, nrow: int, scale: int) -> None:
    codes = [[(i + j) % K for j in range(N)] for i in range(count)]
    r = client.post("/v1/decode", params={"nrow": nrow, "scale": scale}, json={"codes": codes})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    assert open_png(r.content).size == grid_size(count, nrow=nrow, padding=2, scale=scale)


def test_codes_decode_deterministically_without_a_seed(client: TestClient) -> None:
    body = {"codes": [[3] * N, [7] * N]}
    assert client.post("/v1/decode", json=body).content == client.post("/v1/decode", json=body).content
    assert "x-seed" not in client.post("/v1/decode", json=body).headers  # no noise involved


def test_decode_logits_relaxed_at_temperature(client: TestClient) -> None:
    logits = np.random.default_rng(0).normal(size=(4, N, K)).tolist()
    r1 = client.post("/v1/decode", params={"seed": 5, "temperature": 0.5}, json={"logits": logits})
    r2 = client.post("/v1/decode", params={"seed": 5, "temperature": 0.5}, json={"logits": logits})
    r3 = client.post("/v1/decode", params={"seed": 5, "temperature": 3.0}, json={"logits": logits})
    assert r1.status_code == 200, r1.text
    assert r1.content == r2.content
    assert np.abs(png_array(r1.content) - png_array(r3.content)).mean() > 1e-3


def test_hard_logits_decode_like_their_argmax_codes(client: TestClient) -> None:
    # very peaked logits: the Gumbel-Softmax argmax is the logits' argmax for any noise drawn here
    codes = np.random.default_rng(1).integers(0, K, size=(3, N))
    logits = (np.eye(K)[codes] * 1000.0).tolist()
    hard = client.post("/v1/decode", params={"hard": True, "seed": 0}, json={"logits": logits})
    direct = client.post("/v1/decode", json={"codes": codes.tolist()})
    assert hard.content == direct.content


def test_decode_of_codes_from_encode_round_trips_the_grid_size(client: TestClient, mnist_digits) -> None:
    files = upload(*(png_bytes(d.numpy()) for d in mnist_digits[:5]))
    encoded = client.post("/v1/encode", files=files).json()
    codes = [item["code"] for item in encoded["results"]]
    r = client.post("/v1/decode", params={"nrow": 5}, json={"codes": codes})
    assert r.status_code == 200
    assert open_png(r.content).size == grid_size(5, nrow=5, padding=2) == (152, 32)


@pytest.mark.parametrize(("body", "message"), [
    ({"codes": [[10] * N]}, "out of range"),
    ({"codes": [[-1] * N]}, "out of range"),
    ({"codes": [[0] * (N - 1)]}, "N=30"),
    ({"codes": [[0] * N, [0] * (N + 1)]}, "codes[1]"),
    ({"codes": []}, "at least 1"),
    ({"codes": [[0.5] * N]}, "valid integer"),
    ({"codes": [["3"] * N]}, "valid integer"),
    ({"codes": [[0] * N] * 257}, "at most 256"),
    ({"logits": [[[0.0] * K] * (N - 1)]}, "N=30"),
    ({"logits": [[[0.0] * (K + 1)] * N]}, "K=10"),
    ({"logits": [[[1e300] * K] * N]}, "less than or equal to 1"),  # |logit| <= 1e30 (schemas.MAX_LOGIT)
    ({}, "exactly one of"),
    ({"codes": [[0] * N], "logits": [[[0.0] * K] * N]}, "exactly one of"),
    ({"code": [[0] * N]}, "code"),
])
def test_bad_latents_answer_422_with_a_message(client: TestClient, body: dict, message: str) -> None:
    r = client.post("/v1/decode", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]


def test_nan_in_logits_is_rejected(client: TestClient) -> None:
    row = "[" + ", ".join(["NaN"] * K) + "]"
    body = '{"logits": [[' + ", ".join([row] * N) + "]]}"  # Python's JSON parser accepts NaN; the schema must not
    r = client.post("/v1/decode", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "finite" in r.json()["detail"]


def test_invalid_json_answers_422(client: TestClient) -> None:
    r = client.post("/v1/decode", content=b"{codes: [1, 2", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["detail"]

"""On a CUDA machine, `device=auto` serves from the GPU with the same API and per-seed determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from service.app import create_app

from .helpers import make_settings, open_png, png_bytes, upload

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_auto_device_serves_from_cuda(store_root: Path, mnist_digits: torch.Tensor) -> None:
    with TestClient(create_app(make_settings(store_root, device="auto"))) as client:
        ready = client.get("/readyz").json()
        assert ready["device"].startswith("cuda")
        assert client.get("/v1/models/current").json()["device"].startswith("cuda")
        first = client.get("/v1/sample", params={"n": 64, "seed": 5, "hard": True})
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        assert first.content == client.get("/v1/sample", params={"n": 64, "seed": 5, "hard": True}).content
        r = client.post("/v1/reconstruct", params={"seed": 1}, files=upload(png_bytes(mnist_digits[0].numpy())))
        assert r.status_code == 200 and open_png(r.content).size == (28, 58)
        encoded = client.post("/v1/encode", params={"samples": 2}, files=upload(png_bytes(mnist_digits[1].numpy())))
        assert encoded.status_code == 200 and len(encoded.json()["results"][0]["samples"]) == 2

"""Helpers for the service tests: a seeded model in a store, test settings, PNG/upload utilities, and the real
server as a subprocess."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model_store.model import VAEConfig
from model_store.registry import ModelStore
from service.settings import Settings
from tests.conftest import save_seeded_model

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_bundled_model = pytest.mark.skipif(
    not ModelStore().versions("gvae"),
    reason="no bundled model yet: commit a trained version into model_store/store/gvae/ "
           "(or point GVAE_STORE_ROOT at a store holding one) to run this test",
)


def register_seeded_model(root: Path, seed: int = 0, name: str = "gvae") -> int:
    """Registers an untrained default-size GumbelVAE initialised with `seed`; returns its version number."""
    return save_seeded_model(ModelStore(root), VAEConfig(), seed=seed, name=name,
                             metrics={"test_neg_elbo": 543.2, "test_iw_nll": 540.1})


def make_settings(store_root: Path | None, **overrides: object) -> Settings:
    """Settings for a test app: CPU and the given store (None: the default store, i.e. the bundled model)."""
    return Settings(**{"store_root": store_root, "device": "cpu", **overrides})


def png_bytes(image: Image.Image | np.ndarray | torch.Tensor, fmt: str = "PNG", **save_args: object) -> bytes:
    if isinstance(image, torch.Tensor):
        image = image.numpy()
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def open_png(content: bytes) -> Image.Image:
    assert content.startswith(PNG_SIGNATURE), content[:40]
    image = Image.open(io.BytesIO(content), formats=["PNG"])
    image.load()
    return image


def png_array(content: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) float32 in [0, 1]."""
    return np.asarray(open_png(content), dtype=np.float32) / 255.0


def upload(*images: bytes, name: str = "digit.png", content_type: str = "image/png") -> list[tuple[str, tuple]]:
    """The multipart `files` field, repeated once per image."""
    return [("files", (f"{i}-{name}", data, content_type)) for i, data in enumerate(images)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server_process(store_root: Path, **env: str) -> tuple[subprocess.Popen, int]:
    """`python -m service` on a free loopback port, serving `store_root` with GVAE_* `env`; waits for /readyz."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GVAE_")}
    environment.update(GVAE_STORE_ROOT=str(store_root), GVAE_PORT=str(port), GVAE_DEVICE="cpu",
                       GVAE_LOG_LEVEL="warning", GVAE_TORCH_THREADS="1", **env)
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=environment)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode} before it was ready"
        try:
            if get(port, "/readyz")[0] == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the server was not ready within 120 s")


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET on a connection of its own: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()

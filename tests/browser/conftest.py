"""Fixtures for the browser tests: the real service under uvicorn on a free 127.0.0.1 port, and Debian's
headless Chromium driven by selenium through chromium-driver (nothing is downloaded).

    apt-get install -y chromium chromium-driver     # then: make test (or pytest -m browser)

The service serves the bundled model when there is one (or the store GVAE_STORE_ROOT names), else a seeded
untrained model in a tmp store with a made-up training record. UPDATE_README_SCREENSHOT=1 also writes
docs/img/web-page.png (keep that for a trained model: GVAE_STORE_ROOT=<store with one>).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from model_store.model import GumbelVAE, VAEConfig
from model_store.registry import ModelStore
from service.app import create_app
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
README_SCREENSHOT = REPO / "docs" / "img" / "web-page.png"
INSTALL_HINT = ("browser tests need Debian's Chromium and its driver: apt-get install -y chromium chromium-driver "
                "(selenium comes from requirements-dev.txt)")

torch.set_num_threads(1)  # the service runs in this process; the test machine has two cores


class ApiKeyGuard:
    """Stands in for the API-key check of a later change: with `key` set, /v1 answers 401 without X-API-Key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.key: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key and scope["type"] == "http" and scope["path"].startswith("/v1/"):
            sent = dict(scope["headers"]).get(b"x-api-key", b"").decode()
            if sent != self.key:
                answer = JSONResponse({"detail": "missing or wrong API key: send it as X-API-Key"}, status_code=401)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def register_model_with_record(root: Path) -> None:
    """A seeded untrained model whose version holds a training record like `python -m training` writes."""
    from training.record import plot_curves  # matplotlib: only needed here

    history = [{"epoch": e, "step": 600 * e, "lr": 1e-3, "seconds": 6.0, "temperature": max(0.3, 1.0 - 0.1 * e),
                "train_loss": 100 + 100 / e, "test_neg_elbo": 105 + 90 / e} for e in range(1, 11)]
    history[-1]["test_iw_nll"] = 101.5
    torch.manual_seed(0)
    with ModelStore(root).register("gvae") as draft:
        draft.save_weights(GumbelVAE(VAEConfig()))
        draft.save_json("record/metrics.json", history)
        plot_curves(history, draft.file("record/loss_curve.png"))
        draft.metadata.update(metrics={"test_neg_elbo": 114.0, "test_iw_nll": 101.5},
                              description="seeded, untrained test model")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service on a free port, in a thread: {"url": ..., "guard": ApiKeyGuard}."""
    if ModelStore().versions("gvae"):
        store_root = None  # the bundled model (or GVAE_STORE_ROOT's)
    else:
        store_root = tmp_path_factory.mktemp("browser-store")
        register_model_with_record(store_root)
    guard = ApiKeyGuard(create_app(Settings(store_root=store_root, device="cpu", log_level="warning")))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(guard, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the service did not start (see the log above)")
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "guard": guard}
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="session")
def driver() -> Iterator[Any]:
    """Headless Chromium at a desktop size; skips (saying what to install) where it is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=INSTALL_HINT)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip(INSTALL_HINT)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--hide-scrollbars", "--force-color-profile=srgb"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download anything
    browser = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    browser.set_script_timeout(20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield browser
    browser.quit()

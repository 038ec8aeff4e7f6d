"""The page at / and its static files, and the served version's training record under /v1/models/current/record."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from model_store.model import GumbelVAE, VAEConfig
from model_store.registry import ModelStore
from service.app import create_app

from .conftest import TestClient
from .helpers import PNG_SIGNATURE, make_settings, png_bytes

HISTORY = [{"epoch": e, "step": 600 * e, "train_loss": 200.0 - e, "test_neg_elbo": 190.0 - e, "temperature": 1.0}
           for e in (1, 2, 3)]


def register_model_with_record(root: Path, seed: int = 0) -> int:
    """A seeded model whose version holds a training record, as `python -m training` writes one."""
    torch.manual_seed(seed)
    with ModelStore(root).register("gvae") as draft:
        draft.save_weights(GumbelVAE(VAEConfig()))
        draft.save_json("record/metrics.json", HISTORY)
        draft.file("record/loss_curve.png").write_bytes(png_bytes(np.full((40, 70), 200, dtype=np.uint8)))
        draft.metadata.update(metrics={"test_neg_elbo": 187.0})
    assert draft.version is not None
    return draft.version


@pytest.fixture(scope="module")
def record_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("record-store")
    register_model_with_record(root)
    return root


@pytest.fixture(scope="module")
def record_client(record_store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(record_store, warmup=False))) as test_client:
        yield test_client


# ------------------------------------------------------------------------------------------- the page
def test_root_serves_the_page_with_its_script_and_style(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert '<canvas id="pad"' in page.text
    for asset, media_type in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        assert f'"{asset}"' in page.text
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert media_type in answer.headers["content-type"]


def test_page_loads_nothing_from_other_sites(client: TestClient) -> None:
    for path in ("/", "/static/app.js", "/static/style.css"):
        assert not re.search(r"(src|href)=\"(https?:)?//|url\((https?:)?//|import .* from \"http",
                             client.get(path).text), path


def test_static_files_cannot_leave_their_folder(client: TestClient) -> None:
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/nope.js"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "create_app" not in answer.text


def test_page_and_static_files_are_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/static")]
    assert "image/png" in paths["/v1/models/current/record/loss_curve.png"]["get"]["responses"]["200"]["content"]
    assert "application/json" in paths["/v1/models/current/record/metrics.json"]["get"]["responses"]["200"]["content"]
    assert "404" in paths["/v1/models/current/record/metrics.json"]["get"]["responses"]


# ------------------------------------------------------------------------------------------- the record
def test_loss_curve_is_the_versions_png(record_client: TestClient, record_store: Path) -> None:
    answer = record_client.get("/v1/models/current/record/loss_curve.png")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content.startswith(PNG_SIGNATURE)
    stored = (ModelStore(record_store).version_dir("gvae", 1) / "record" / "loss_curve.png").read_bytes()
    assert answer.content == stored
    assert answer.headers["etag"] == f'"{hashlib.sha256(stored).hexdigest()}"'
    assert answer.headers["x-model-version"] == "gvae:1"


def test_metrics_are_the_per_epoch_history(record_client: TestClient) -> None:
    answer = record_client.get("/v1/models/current/record/metrics.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == HISTORY


def test_a_version_without_a_record_answers_404_saying_so(client: TestClient) -> None:
    for name in ("loss_curve.png", "metrics.json"):
        answer = client.get(f"/v1/models/current/record/{name}")
        assert answer.status_code == 404
        assert "has no training record" in answer.json()["detail"]


def test_only_the_listed_record_files_can_be_read(record_client: TestClient) -> None:
    for path in ("config.json", "../metadata.json", "..%2fweights.safetensors", "grids/x.png", "%2e%2e/metadata.json"):
        answer = record_client.get(f"/v1/models/current/record/{path}")
        assert answer.status_code == 404, path
        assert "model_config" not in answer.text


def test_a_record_file_changed_after_loading_is_not_served(tmp_path: Path) -> None:
    register_model_with_record(tmp_path)
    metrics = ModelStore(tmp_path).version_dir("gvae", 1) / "record" / "metrics.json"
    with TestClient(create_app(make_settings(tmp_path, warmup=False))) as test_client:
        metrics.write_text(json.dumps([{"epoch": 1, "train_loss": 1.0}]))
        answer = test_client.get("/v1/models/current/record/metrics.json")
        assert answer.status_code == 503
        assert "modified" in answer.json()["detail"]
        metrics.unlink()
        answer = test_client.get("/v1/models/current/record/metrics.json")
        assert answer.status_code == 503
        assert "cannot be read" in answer.json()["detail"]

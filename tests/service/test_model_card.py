"""GET /v1/models/{version}/card: the version's HTML model card, verified, for a number, an alias or `current`."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from model_store.registry import ModelStore
from service.app import create_app

from .helpers import make_settings, register_seeded_model


def test_card_of_the_current_version_is_html_with_its_metrics(client: TestClient) -> None:
    response = client.get("/v1/models/current/card")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>gvae v1</h1>" in response.text and "540.1" in response.text
    assert client.get("/v1/models/1/card").text == response.text
    assert client.get("/v1/models/latest/card").text == response.text


def test_card_of_an_unknown_version_is_404_with_a_message(client: TestClient) -> None:
    response = client.get("/v1/models/99/card")
    assert response.status_code == 404
    assert "no version 99" in response.json()["detail"]
    assert client.get("/v1/models/..%2F..%2Fetc/card").status_code in (404, 422)


def test_card_is_declared_as_html_in_the_schema(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{version}/card"]["get"]
    assert "text/html" in operation["responses"]["200"]["content"]


def test_card_of_a_damaged_version_is_refused(tmp_path: Path) -> None:
    register_seeded_model(tmp_path, seed=0)
    register_seeded_model(tmp_path, seed=1)
    with TestClient(create_app(make_settings(tmp_path, model_version="2"))) as client:
        weights = ModelStore(tmp_path).version_dir("gvae", 1) / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
        response = client.get("/v1/models/1/card")
        assert response.status_code == 503
        assert "weights.safetensors" in response.json()["detail"]

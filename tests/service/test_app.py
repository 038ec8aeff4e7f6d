"""Start-up, health and readiness, model listing, headers, OpenAPI and the error mapping."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from model_store.errors import IntegrityError, ModelNotFound
from model_store.registry import ModelStore
from service import __main__ as cli
from service.app import create_app
from service.settings import Settings, get_settings

from .helpers import make_settings, png_bytes, register_seeded_model, upload

PNG_ROUTES = [("/v1/sample", "get"), ("/v1/decode", "post"), ("/v1/reconstruct", "post")]


# ------------------------------------------------------------------------------------------ health
def test_not_ready_before_the_lifespan_has_loaded_the_model(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # no `with`: the lifespan has not run
    for path in ("/readyz", "/v2/health/ready"):
        r = client.get(path)
        assert r.status_code == 503
        assert "loading" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/v2/health/live").status_code == 200
    r = client.get("/v1/sample?n=1")
    assert r.status_code == 503 and r.headers["x-model-version"] == "none"
    assert r.headers["retry-after"]


def test_ready_after_load_and_warm_up(client: TestClient) -> None:
    for path in ("/readyz", "/v2/health/ready", "/healthz", "/v2/health/live"):
        assert client.get(path).status_code == 200
    assert client.get("/readyz").json() == {"status": "ready", "model": "gvae:1", "device": "cpu"}


def test_startup_logs_the_device(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service"), TestClient(create_app(settings.model_copy(
            update={"device": "auto"}))):
        pass
    assert any("loaded gvae:1" in m and " on cpu" in m for m in caplog.messages)
    assert any("ready: serving gvae:1" in m for m in caplog.messages)


# ------------------------------------------------------------------------------------------ start-up failures
def test_tampered_weights_stop_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    register_seeded_model(tmp_path)
    weights = ModelStore(tmp_path).version_dir("gvae", 1) / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight
    weights.write_bytes(bytes(data))
    app = create_app(make_settings(tmp_path))
    with pytest.raises(IntegrityError, match="sha256"), TestClient(app):
        pass
    assert app.state.runner is None and not app.state.ready
    assert any("not starting" in m and "sha256" in m for m in caplog.messages)


def test_missing_model_or_version_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="no versions"), TestClient(create_app(make_settings(tmp_path))):
        pass
    register_seeded_model(tmp_path)
    with pytest.raises(ModelNotFound, match="no alias 'production'"), TestClient(
            create_app(make_settings(tmp_path, model_version="production"))):
        pass


def test_unavailable_device_stops_start_up(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"device": "tpu:7"}))
    with pytest.raises(ValueError, match="not a device"), TestClient(app):
        pass


# ------------------------------------------------------------------------------------------ models
def test_serves_the_configured_version_and_lists_the_store(tmp_path: Path) -> None:
    register_seeded_model(tmp_path, seed=0)
    register_seeded_model(tmp_path, seed=1)
    ModelStore(tmp_path).set_alias("gvae", "production", 1)
    with TestClient(create_app(make_settings(tmp_path, model_version="production"))) as client:
        listing = client.get("/v1/models").json()
        current = client.get("/v1/models/current")
    assert listing["serving"] == "gvae:1"
    (model,) = listing["models"]
    assert model["aliases"] == {"production": 1, "latest": 2}
    assert [(v["version"], v["aliases"]) for v in model["versions"]] == [(1, ["production"]), (2, ["latest"])]
    assert model["versions"][0]["metrics"]["test_neg_elbo"] == 543.2
    body = current.json()
    assert current.headers["x-model-version"] == body["tag"] == "gvae:1"
    assert body["device"] == "cpu"
    assert body["metadata"]["model_config"]["latent_dim"] == 30
    assert len(body["metadata"]["files"]["weights.safetensors"]) == 64  # sha256
    assert "metrics" in body["metadata"]


def test_every_response_carries_the_model_version(client: TestClient) -> None:
    for r in (client.get("/healthz"), client.get("/v1/sample?n=1"), client.get("/v1/sample?n=0"),
              client.get("/no/such/path"), client.get("/openapi.json"),
              client.post("/v1/encode", files=upload(b"text"))):
        assert r.headers["x-model-version"] == "gvae:1", r.url


# ------------------------------------------------------------------------------------------ errors and limits
def test_store_errors_are_mapped_in_one_place(client: TestClient) -> None:
    app = client.app

    @app.get("/test-only/missing")  # type: ignore[union-attr]
    def missing() -> None:
        raise ModelNotFound("model 'x' has no version 9; available: [1]")

    r = client.get("/test-only/missing")
    assert r.status_code == 404 and r.json() == {"detail": "model 'x' has no version 9; available: [1]"}


def test_too_many_files_answers_422(store_root: Path, mnist_digits) -> None:
    app = create_app(make_settings(store_root, max_files=2))
    with TestClient(app) as client:
        r = client.post("/v1/encode", files=upload(*[png_bytes(d.numpy()) for d in mnist_digits[:3]]))
    assert r.status_code == 422
    assert "3 files uploaded; at most 2" in r.json()["detail"]


def test_oversized_uploads_and_bodies_answer_413(store_root: Path) -> None:
    app = create_app(make_settings(store_root, max_upload_bytes=2048, max_files=1, max_json_bytes=4096))
    noise = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))  # ~4 KiB
    with TestClient(app) as client:
        file_too_big = client.post("/v1/encode", files=upload(noise))
        body_too_big = client.post("/v1/encode", files=upload(noise, noise, noise))
        json_too_big = client.post("/v1/decode", json={"codes": [[0] * 30] * 100})
    assert file_too_big.status_code == 413 and "GVAE_MAX_UPLOAD_BYTES" in file_too_big.json()["detail"]
    assert body_too_big.status_code == 413 and "fewer or smaller files" in body_too_big.json()["detail"]
    assert json_too_big.status_code == 413 and "fewer images" in json_too_big.json()["detail"]


def test_server_limits_below_the_schema_ceilings(store_root: Path) -> None:
    with TestClient(create_app(make_settings(store_root, max_n=10, max_scale=2))) as client:
        assert client.get("/v1/sample?n=11").status_code == 422
        assert "GVAE_MAX_N" in client.get("/v1/sample?n=11").json()["detail"]
        assert "GVAE_MAX_SCALE" in client.get("/v1/sample?n=1&scale=3").json()["detail"]
        assert client.get("/v1/sample?n=10&scale=2").status_code == 200


def test_the_openapi_schema_states_this_servers_limits(store_root: Path) -> None:
    """Lowered GVAE_MAX_* limits are what the schema promises, so clients and fuzzers stay within them."""
    settings = make_settings(store_root, max_n=10, max_scale=2, max_files=3, max_encode_samples=5)
    with TestClient(create_app(settings)) as client:
        spec = client.get("/openapi.json").json()
    def maximum(path: str, method: str, name: str) -> int:
        return next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name)["schema"]["maximum"]
    assert maximum("/v1/sample", "get", "n") == 10
    assert {maximum(path, method, "scale") for path, method in PNG_ROUTES} == {2}
    assert maximum("/v1/encode", "post", "samples") == 5
    schemas = spec["components"]["schemas"]
    for path in ("/v1/reconstruct", "/v1/encode"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        assert schemas[body.rsplit("/", 1)[-1]]["properties"]["files"]["maxItems"] == 3
    for name in ("codes", "logits"):
        assert next(s for s in schemas["DecodeRequest"]["properties"][name]["anyOf"] if s.get("type") == "array")[
            "maxItems"] == 10


# ------------------------------------------------------------------------------------------ settings and docs
def test_openapi_declares_png_responses_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, method in PNG_ROUTES:
        responses = spec["paths"][path][method]["responses"]
        assert list(responses["200"]["content"]) == ["image/png"], path
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    temperature = next(p for p in spec["paths"]["/v1/sample"]["get"]["parameters"] if p["name"] == "temperature")
    assert temperature["schema"]["exclusiveMinimum"] == 0 and temperature["schema"]["maximum"] == 100
    assert client.get("/docs").status_code == 200


def test_settings_come_from_gvae_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GVAE_STORE_ROOT", str(tmp_path))
    monkeypatch.setenv("GVAE_PORT", "9123")
    monkeypatch.setenv("GVAE_MODEL_VERSION", "production")
    settings = get_settings()
    assert (settings.store_root, settings.port, settings.model_version) == (tmp_path, 9123, "production")
    assert settings.device == "auto" and settings.model_name == "gvae" and settings.max_n == 256


def test_command_line_overrides_settings_and_runs_uvicorn(monkeypatch: pytest.MonkeyPatch, store_root: Path) -> None:
    calls = {}
    monkeypatch.setenv("GVAE_PORT", "9999")

    def run(server: cli.GracefulServer) -> None:  # instead of serving: record what uvicorn was given
        config = server.config
        calls.update(app=config.app, host=config.host, port=config.port, grace=config.timeout_graceful_shutdown,
                     keep_alive=config.timeout_keep_alive)
        server.started = True

    monkeypatch.setattr(cli.GracefulServer, "run", run)
    cli.main(["--host", "0.0.0.0", "--port", "8123", "--store-root", str(store_root), "--device", "cpu"])
    assert (calls["host"], calls["port"], calls["grace"], calls["keep_alive"]) == ("0.0.0.0", 8123, 5.0, 75.0)
    settings = calls["app"].state.settings
    assert settings.store_root == store_root and settings.device == "cpu"

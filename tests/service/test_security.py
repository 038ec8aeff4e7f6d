"""Access and limits: the optional API key (service/security.py), the streaming body cap and the per-request
timeout (service/limits.py), and the start-up warning when bound beyond loopback without a key."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from service.app import create_app
from service.limits import RequestTimeout
from service.security import is_loopback, warn_if_exposed

from .helpers import make_settings, png_bytes, upload

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "s3cret-key"
PROTECTED = ["/v1/sample?n=1", "/v1/models", "/v1/models/current", "/v1/models/current/record/metrics.json",
             "/metrics"]
OPEN = ["/", "/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json",
        "/static/app.js"]


@pytest.fixture(scope="module")
def keyed(store_root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(store_root, api_key=KEY, max_json_bytes=4096))) as client:
        yield client


# ------------------------------------------------------------------------------------------ API key
@pytest.mark.parametrize("path", PROTECTED)
def test_protected_routes_answer_401_with_www_authenticate_without_a_key(keyed: TestClient, path: str) -> None:
    response = keyed.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in response.json()["detail"]
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("headers", [{"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Bearer {KEY}x"}])
def test_a_wrong_key_answers_403(keyed: TestClient, headers: dict[str, str]) -> None:
    response = keyed.get("/v1/models", headers=headers)
    assert response.status_code == 403
    assert "wrong API key" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"},
                                     {"authorization": f"bearer {KEY}"}])
def test_the_right_key_in_either_header_is_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.get("/v1/sample?n=1&seed=0", headers=headers).status_code == 200
    assert keyed.get("/metrics", headers=headers).status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_probes_docs_and_the_page_stay_open_without_a_key(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200, path


def test_a_request_without_a_key_is_refused_before_its_body_is_read(keyed: TestClient) -> None:
    response = keyed.post("/v1/decode", content=b"x" * 100_000, headers={"content-type": "application/json"})
    assert response.status_code == 401  # not 413: the key is checked first


def test_without_a_key_configured_everything_is_open(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 200


def test_the_openapi_schema_lets_no_client_name_a_file_or_url(client: TestClient) -> None:
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                name = parameter["name"].lower()
                assert not any(word in name for word in ("path", "file", "url", "uri", "dir")), (path, name)


# ------------------------------------------------------------------------------------------ body cap
def _chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


def test_a_content_length_over_the_cap_answers_413_at_once(keyed: TestClient) -> None:
    response = keyed.post("/v1/decode", content=b"{}" + b" " * 5000,
                          headers={"X-API-Key": KEY, "content-type": "application/json"})
    assert response.status_code == 413
    assert "over the limit of 4096" in response.json()["detail"]


def test_a_chunked_body_without_content_length_is_cut_off_at_the_cap(keyed: TestClient) -> None:
    response = keyed.post("/v1/decode", content=_chunks(64 * 1024),
                          headers={"X-API-Key": KEY, "content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert "over the limit of 4096 bytes" in response.json()["detail"]
    assert keyed.get("/readyz").status_code == 200


def test_a_chunked_multipart_upload_over_the_cap_answers_413(store_root: Path) -> None:
    settings = make_settings(store_root, max_files=1, max_upload_bytes=1024, warmup=False)
    body = b"--b\r\ncontent-disposition: form-data; name=files; filename=a.png\r\n\r\n" + b"x" * 20_000
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/encode", content=iter([body[i:i + 1000] for i in range(0, len(body), 1000)]),
                               headers={"content-type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413, response.text
        assert client.get("/readyz").status_code == 200


def test_a_body_under_the_cap_still_works_when_chunked(keyed: TestClient) -> None:
    body = b'{"codes": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]]}'
    response = keyed.post("/v1/decode", content=iter([body[:50], body[50:]]),
                          headers={"X-API-Key": KEY, "content-type": "application/json"})
    assert response.status_code == 200, response.text


def test_a_2gb_content_length_with_a_short_body_answers_413_without_reading_it(client: TestClient) -> None:
    received: list[dict] = []

    async def receive() -> dict:  # the client never sends 2 GB: the guard must answer from the header alone
        received.append({})
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/decode", "raw_path": b"/v1/decode", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"2147483648")],
             "http_version": "1.1", "scheme": "http", "server": ("test", 80), "client": ("test", 1), "root_path": "",
             "app": client.app, "state": {}}
    asyncio.run(client.app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b"2147483648 bytes" in sent[1]["body"]
    assert not received


def test_a_multipart_upload_over_the_per_file_limit_answers_413(store_root: Path) -> None:
    settings = make_settings(store_root, max_upload_bytes=2048, warmup=False)
    noisy = png_bytes(Image.effect_noise((64, 64), 100).convert("L"))
    assert len(noisy) > 2048
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/encode", files=upload(noisy)).status_code == 413


# ------------------------------------------------------------------------------------------ timeout
async def _slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(5)
    await JSONResponse({"ok": True})(scope, receive, send)


async def _streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0.3)  # past the deadline, but the answer has started: it must not be cut off
    await send({"type": "http.response.body", "body": b"done"})


def test_a_request_not_answered_in_time_gets_503_with_retry_after() -> None:
    client = TestClient(RequestTimeout(_slow_app, seconds=0.1))  # no `with`: these toy apps have no lifespan
    response = client.get("/slow")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "GVAE_REQUEST_TIMEOUT_SECONDS" in response.json()["detail"]
    assert client.get("/fast").json() == {"ok": True}


def test_an_answer_that_has_started_is_never_cut_off_by_the_timeout() -> None:
    response = TestClient(RequestTimeout(_streaming_app, seconds=0.1)).get("/")
    assert (response.status_code, response.content) == (200, b"done")


def test_the_service_answers_503_when_the_model_is_slower_than_the_timeout(store_root: Path) -> None:
    with TestClient(create_app(make_settings(store_root, request_timeout_seconds=0.001))) as client:
        response = client.get("/v1/sample?n=256&scale=8&seed=0")
        assert response.status_code == 503
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert client.get("/readyz").status_code == 200


# ------------------------------------------------------------------------------------------ start-up warning
@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("0.0.0.0", False), ("::", False), ("10.1.2.3", False)])
def test_loopback_addresses_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_without_a_key_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="service.security"):
        assert warn_if_exposed("0.0.0.0", key_set=False)
        assert not warn_if_exposed("0.0.0.0", key_set=True)
        assert not warn_if_exposed("127.0.0.1", key_set=False)
    assert len(caplog.records) == 1 and "GVAE_API_KEY" in caplog.records[0].message

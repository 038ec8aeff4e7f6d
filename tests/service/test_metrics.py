"""GET /metrics (Prometheus text format) and the X-Request-ID header."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

FAMILIES = {
    "gvae_http_requests": "counter",
    "gvae_http_request_duration_seconds": "histogram",
    "gvae_http_requests_in_flight": "gauge",
    "gvae_batch_size_images": "histogram",
    "gvae_batch_requests": "histogram",
    "gvae_queue_wait_seconds": "histogram",
    "gvae_model_inference_seconds": "histogram",
    "gvae_queue_depth": "gauge",
}


def scrape(client: TestClient) -> dict:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def test_metrics_expose_the_named_families(client: TestClient) -> None:
    assert client.get("/v1/sample", params={"n": 3, "seed": 0}).status_code == 200
    families = scrape(client)
    for name, kind in FAMILIES.items():
        assert name in families and families[name].type == kind, name
    images = [s for s in families["gvae_batch_size_images"].samples if s.name.endswith("_sum")]
    assert sum(s.value for s in images) >= 3


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    before = scrape(client)["gvae_http_requests"]
    client.get("/v1/sample", params={"n": 1})
    client.get("/v1/sample", params={"n": 0})  # 422
    client.get("/no/such/path/123")  # 404: not a label value of its own
    after = scrape(client)["gvae_http_requests"]

    def count(family, **labels: str) -> float:  # noqa: ANN001
        return sum(s.value for s in family.samples if s.name.endswith("_total")
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    for status in ("200", "422"):
        assert count(after, route="/v1/sample", method="GET", status=status) == \
            count(before, route="/v1/sample", method="GET", status=status) + 1
    assert count(after, route="<unmatched>", status="404") == count(before, route="<unmatched>", status="404") + 1
    routes = {s.labels["route"] for s in after.samples}
    assert not any("/no/such" in r or "n=" in r for r in routes)


def test_every_answer_carries_a_request_id(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    assert len(first.headers["x-request-id"]) == 16 and first.headers["x-request-id"] != second.headers["x-request-id"]
    assert client.get("/healthz", headers={"X-Request-ID": "trace-42.a"}).headers["x-request-id"] == "trace-42.a"
    odd = client.get("/healthz", headers={"X-Request-ID": "no spaces <allowed>"}).headers["x-request-id"]
    assert odd != "no spaces <allowed>" and len(odd) == 16
    assert client.get("/no/such/path").headers["x-request-id"]


def test_metrics_route_is_not_part_of_the_api_schema(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_odd_methods_do_not_make_new_series(client: TestClient) -> None:
    client.request("BREW", "/coffee")
    methods = {s.labels["method"] for s in scrape(client)["gvae_http_requests"].samples}
    assert "BREW" not in methods and "OTHER" in methods

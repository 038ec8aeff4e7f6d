"""Prometheus metrics: HTTP requests per route and status, in-flight requests, and the batching worker's
batch sizes, queue wait and model time. `GET /metrics` serves them in the text exposition format.

Every app gets its own `CollectorRegistry` (tests create many apps in one process). The `route` label is the
route's template (`/v1/sample`, not the raw path with its query), or `<unmatched>` for 404s, and unusual
methods count as `OTHER`, so the number of series stays bounded whatever clients send.

    metrics = Metrics()
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WAIT_BUCKETS = (.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)


class Metrics:
    """The service's metric families, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = ("method", "route", "status")
        self.requests = Counter("gvae_http_requests", "HTTP requests answered", labels, registry=r)
        self.latency = Histogram("gvae_http_request_duration_seconds", "Time from request to the last byte sent",
                                 labels, buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("gvae_http_requests_in_flight", "HTTP requests being answered", registry=r)
        self.batch_size = Histogram("gvae_batch_size_images", "Images per forward pass of a network",
                                    ("network",), buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("gvae_batch_requests", "Requests sharing one forward pass of a network",
                                        ("network",), buckets=BATCH_BUCKETS, registry=r)
        self.inference = Histogram("gvae_model_inference_seconds", "Time of one batched forward pass",
                                   ("network",), buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("gvae_queue_wait_seconds", "Time a request waits for the model worker",
                                    buckets=WAIT_BUCKETS, registry=r)
        self.queue_depth = Gauge("gvae_queue_depth", "Requests queued for, or being run by, the model worker",
                                 registry=r)

    def observe_batch(self, network: str, images: int, requests: int, seconds: float) -> None:
        self.batch_size.labels(network).observe(images)
        self.batch_requests.labels(network).observe(requests)
        self.inference.labels(network).observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics: every family in Prometheus's text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Pure ASGI middleware: counts, times and tracks in-flight HTTP requests by method, route and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # bounded: methods x routes x statuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE  # set by the router on a match
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"  # clients choose methods
            key = (method, route, status)
            children = self._children.get(key)
            if children is None:  # first request of its kind: look the labelled series up once, not every time
                labels = (key[0], route, str(status))
                children = self._children[key] = (self.metrics.requests.labels(*labels),
                                                   self.metrics.latency.labels(*labels))
            children[0].inc()
            children[1].observe(time.perf_counter() - start)

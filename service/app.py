"""The FastAPI application: `create_app(settings)` wires routers, middleware and error handlers; its lifespan
loads and verifies the model, starts its batching runner, warms it up, and only then reports ready.

    uvicorn --factory service.app:create_app        # or: python -m service --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from model_store.devices import describe_device
from model_store.errors import StoreError
from model_store.registry import ModelStore

from . import __version__
from .direct_route import add_direct_routes
from .errors import install_error_handlers
from .inference import CPU_TILE_ROWS, InferenceEngine, resolve_device
from .limits import BodySizeLimit, RequestTimeout
from .metrics import HttpMetrics, Metrics
from .middleware import ResponseHeaders
from .openapi_model import install_model_schema
from .routes import health, images, models, record, sampling, web
from .runner import ModelRunner
from .security import ApiKeyGuard
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    store: ModelStore = app.state.store
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    try:  # the sha256 of every file is checked: damaged or edited weights are never served
        device = resolve_device(settings.device)
        tile = settings.batch_tile or (CPU_TILE_ROWS if device.type == "cpu" else settings.max_batch_size)
        engine = await run_in_threadpool(InferenceEngine.from_store, store, settings.model_name,
                                         settings.model_version, device, tile)
    except (StoreError, ValueError) as exc:
        log.critical("not starting: cannot serve %s:%s from %s: %s", settings.model_name, settings.model_version,
                     store.root, exc)
        raise
    log.info("loaded %s (weights sha256 %s...) on %s", engine.tag,
             str(engine.metadata.get("files", {}).get("weights.safetensors", "?"))[:12], describe_device(device))
    runner = ModelRunner(engine, max_batch_size=settings.max_batch_size, max_wait_s=settings.max_batch_wait_ms / 1000,
                         max_queue=settings.max_queue, metrics=app.state.metrics)
    try:
        if settings.warmup:
            await runner.run(engine.warm_up)
            log.info("warm-up done")
        if settings.cuda_graphs and device.type == "cuda":
            await runner.run(engine.capture_cuda_graphs)
            await runner.run(engine.warm_up)
            log.info("recorded the encoder and decoder passes as CUDA graphs (%d rows per tile)", engine.tile_rows)
        elif settings.cuda_graphs:
            log.warning("GVAE_CUDA_GRAPHS is set but the model runs on %s: ignored", device)
        # torch + FastAPI leave ~200k objects for the cyclic GC, and a full collection of them takes ~100 ms,
        # stalling every request in flight (the p99). Start-up objects live as long as the process: freeze them.
        gc.collect()
        gc.freeze()
        app.state.runner = runner
        app.state.ready = True
        log.info("ready: serving %s (batches of up to %d images, %d rows per model call, wait %g ms)", engine.tag,
                 settings.max_batch_size, engine.tile_rows, settings.max_batch_wait_ms)
        yield
    finally:
        app.state.ready = False
        app.state.runner = None
        runner.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app for `settings` (default: `get_settings()`, from GVAE_* environment variables)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="gvae-serve",
        version=__version__,
        summary="Sample, encode, decode and reconstruct MNIST digits with a Gumbel-Softmax VAE",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = ModelStore(settings.store_root)
    app.state.runner = None  # set by the lifespan once the model is loaded and warmed up
    app.state.ready = False
    app.state.metrics = Metrics()  # a registry per app
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, settings=settings)  # counts body bytes as they arrive (chunked too)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_seconds)  # 503 when not answered in time
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    app.add_middleware(ApiKeyGuard, key=key)  # outside the size limit: no body is read for a request without a key
    app.add_middleware(ResponseHeaders)  # outside the size limit, so even 413s carry X-Model-Version
    app.add_middleware(HttpMetrics, metrics=app.state.metrics)  # added last: outermost, so it times everything
    app.add_route("/metrics", app.state.metrics.endpoint, include_in_schema=False)
    add_direct_routes(app, sampling.router)  # the hottest routes first (matched in order), on the lean path
    for module in (images, health, models, record, web):
        app.include_router(module.router)
    app.mount(web.STATIC_PATH, web.static_files(), name="static")  # the page's script and style
    install_model_schema(app)  # /openapi.json states the served model's N and K
    return app

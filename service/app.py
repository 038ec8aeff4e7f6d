"""The FastAPI application: `create_app(settings)` wires routers, middleware and error handlers; its lifespan
loads and verifies the model, warms it up, and only then reports ready.

    uvicorn --factory service.app:create_app        # or: python -m service --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from model_store.errors import StoreError
from model_store.registry import ModelStore

from . import __version__
from .errors import install_error_handlers
from .inference import InferenceEngine, describe_device, resolve_device
from .middleware import ModelVersionHeader, RequestSizeLimit
from .routes import health, images, models, record, sampling, web
from .runner import ModelRunner
from .settings import Settings, get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    store: ModelStore = app.state.store
    try:  # the sha256 of every file is checked: damaged or edited weights are never served
        device = resolve_device(settings.device)
        engine = await run_in_threadpool(InferenceEngine.from_store, store, settings.model_name,
                                         settings.model_version, device)
    except (StoreError, ValueError) as exc:
        log.critical("not starting: cannot serve %s:%s from %s: %s", settings.model_name, settings.model_version,
                     store.root, exc)
        raise
    log.info("loaded %s (weights sha256 %s...) on %s", engine.tag,
             str(engine.metadata.get("files", {}).get("weights.safetensors", "?"))[:12], describe_device(device))
    runner = ModelRunner(engine)
    try:
        if settings.warmup:
            await runner.run(engine.warm_up)
            log.info("warm-up done")
        app.state.runner = runner
        app.state.ready = True
        log.info("ready: serving %s", engine.tag)
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
    app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimit, settings=settings)
    app.add_middleware(ModelVersionHeader)  # added last: outermost, so even 413s above carry the header
    for module in (health, models, record, sampling, images, web):
        app.include_router(module.router)
    app.mount(web.STATIC_PATH, web.static_files(), name="static")  # the page's script and style
    return app

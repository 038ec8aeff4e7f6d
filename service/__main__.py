"""Serves the model over HTTP with uvicorn.

    python -m service --host 127.0.0.1 --port 8000          # what `make serve` runs
    GVAE_MODEL_VERSION=production GVAE_DEVICE=cpu python -m service

Every option falls back to its GVAE_* environment variable (see service/settings.py and docs/api.md).
Exits with status 3 when the model cannot be loaded, e.g. when its files fail the sha256 check. On SIGTERM or
SIGINT it stops accepting connections, lets requests in flight finish (up to GVAE_GRACEFUL_SHUTDOWN_SECONDS)
and exits with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

import uvicorn

from .app import create_app
from .security import warn_if_exposed
from .settings import Settings

STARTUP_FAILURE = 3  # as uvicorn.run: the app's lifespan failed (e.g. the model did not load)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a graceful stop on SIGTERM/SIGINT exits 0: uvicorn re-raises the signal
    after shutting down (status 143 for SIGTERM), which process managers outside a container report as a crash."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()  # handled: the shutdown was graceful


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="interface to bind (GVAE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (GVAE_PORT, default 8000)")
    parser.add_argument("--store-root", help="model store folder (GVAE_STORE_ROOT, default model_store/store)")
    parser.add_argument("--model-name", help="model to serve (GVAE_MODEL_NAME, default gvae)")
    parser.add_argument("--model-version", help="version number or alias (GVAE_MODEL_VERSION, default latest)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (GVAE_DEVICE, default auto)")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                        help="GVAE_LOG_LEVEL, default info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    overrides = {k: v for k, v in vars(parse_args(argv)).items() if v is not None}
    settings = Settings(**overrides)  # command-line values win over GVAE_* variables
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warn_if_exposed(settings.host, key_set=bool(settings.api_key and settings.api_key.get_secret_value()))
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=settings.log_level, timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
                            timeout_keep_alive=settings.keep_alive_seconds)
    server = GracefulServer(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()

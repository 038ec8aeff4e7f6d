"""Serves the model over HTTP with uvicorn.

    python -m service --host 127.0.0.1 --port 8000          # what `make serve` runs
    GVAE_MODEL_VERSION=production GVAE_DEVICE=cpu python -m service

Every option falls back to its GVAE_* environment variable (see service/settings.py and docs/api.md).
Exits with status 3 when the model cannot be loaded, e.g. when its files fail the sha256 check.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import create_app
from .settings import Settings


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
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()

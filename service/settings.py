"""Service settings, read from `GVAE_*` environment variables (pydantic-settings); tests override `get_settings`.

    GVAE_PORT=9000 GVAE_DEVICE=cpu GVAE_MODEL_VERSION=production python -m service
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Hard ceilings: the OpenAPI schema states these; settings may only lower them.
MAX_N = 256  # images per /v1/sample or /v1/decode request
MAX_SCALE = 8  # integer up-scaling of a PNG grid
MAX_PADDING = 16  # pixels between grid cells


class Settings(BaseSettings):
    """Every field is read from the environment as GVAE_<FIELD> (e.g. GVAE_STORE_ROOT, GVAE_MAX_FILES)."""

    model_config = SettingsConfigDict(env_prefix="GVAE_", extra="ignore")

    host: str = "127.0.0.1"  # `python -m service` binds here
    port: int = Field(8000, ge=1, le=65535)
    store_root: Path | None = None  # None: the model_store default (model_store/store/)
    model_name: str = "gvae"  # which model of the store to serve ...
    model_version: str = "latest"  # ... and which version: a number or an alias
    device: str = "auto"  # auto (CUDA when available, else CPU), cpu, cuda, cuda:1, mps
    warmup: bool = True  # run one forward pass of every kind before reporting ready
    max_files: int = Field(32, ge=1, le=1024)  # uploads per /v1/reconstruct or /v1/encode request
    max_upload_bytes: int = Field(10 * 2**20, ge=1024)  # per uploaded file
    max_json_bytes: int = Field(8 * 2**20, ge=1024)  # a /v1/decode body (256 x 30 x 10 logits is ~1.5 MiB)
    max_image_pixels: int = Field(40_000_000, ge=784)  # width x height of one upload (decompression bombs)
    max_n: int = Field(MAX_N, ge=1, le=MAX_N)  # images per sample/decode request
    max_scale: int = Field(MAX_SCALE, ge=1, le=MAX_SCALE)
    max_encode_samples: int = Field(64, ge=0, le=1024)  # Gumbel-Softmax samples per image on /v1/encode
    png_compress_level: int = Field(1, ge=0, le=9)  # zlib level: 1 is fast and MNIST grids compress well anyway
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @property
    def max_request_bytes(self) -> int:
        """Largest multipart body accepted before parsing: every file at its limit plus its part headers."""
        return self.max_files * (self.max_upload_bytes + 4096)


@lru_cache
def get_settings() -> Settings:
    return Settings()

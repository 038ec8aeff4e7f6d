"""Service settings, read from `GVAE_*` environment variables (pydantic-settings) by `get_settings()`;
`create_app(settings)` takes them explicitly (tests pass their own) and routes read them from the app.

    GVAE_PORT=9000 GVAE_DEVICE=cpu GVAE_MODEL_VERSION=production python -m service
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Hard ceilings: the OpenAPI schema states these; settings may only lower them.
MAX_N = 256  # images per /v1/sample or /v1/decode request
MAX_SCALE = 8  # integer up-scaling of a PNG grid
MAX_PADDING = 16  # pixels between grid cells
MAX_ENCODE_SAMPLES = 64  # Gumbel-Softmax samples per image on /v1/encode
MAX_FILES = 1000  # uploads per /v1/reconstruct or /v1/encode request (also the multipart parser's own cap)


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
    max_files: int = Field(32, ge=1, le=MAX_FILES)  # uploads per /v1/reconstruct or /v1/encode request
    max_upload_bytes: int = Field(10 * 2**20, ge=1024)  # per uploaded file
    max_json_bytes: int = Field(8 * 2**20, ge=1024)  # a /v1/decode body (256 x 30 x 10 logits is ~1.5 MiB)
    max_image_pixels: int = Field(40_000_000, ge=784)  # width x height of one upload (decompression bombs)
    max_n: int = Field(MAX_N, ge=1, le=MAX_N)  # images per sample/decode request
    max_scale: int = Field(MAX_SCALE, ge=1, le=MAX_SCALE)
    max_encode_samples: int = Field(MAX_ENCODE_SAMPLES, ge=0, le=MAX_ENCODE_SAMPLES)  # samples per image, /v1/encode
    png_compress_level: int = Field(1, ge=0, le=9)  # zlib level: 1 is fast and MNIST grids compress well anyway
    # dynamic batching (service/batching.py): concurrent requests share one forward pass of the model
    max_batch_size: int = Field(64, ge=1, le=4096)  # images per forward pass; bigger requests are split
    max_batch_wait_ms: float = Field(1.0, ge=0, le=1000)  # how long an idle worker waits for more requests
    max_queue: int = Field(1024, ge=1)  # requests waiting for the model; one more answers 503 (Retry-After)
    batch_tile: int = Field(0, ge=0, le=4096)  # rows per model call; 0: 16 on CPU, max_batch_size on GPUs
    torch_threads: int = Field(1, ge=0, le=256)  # intra-op threads; 0: torch's default (one per core)
    cuda_graphs: bool = False  # on a GPU: replay each tile's forward pass as a CUDA graph (fewer launches)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # access and robustness (service/security.py, service/limits.py; docs/threat-model.md)
    api_key: SecretStr | None = None  # when set, /v1/* and /metrics need it (Bearer or X-API-Key); probes stay open
    request_timeout_seconds: float = Field(30.0, gt=0, le=3600)  # a model call not done by then answers 503
    graceful_shutdown_seconds: float = Field(5.0, ge=0, le=3600)  # SIGTERM: in-flight requests get this long
    # An idle keep-alive connection is closed after this long. Longer than the idle timeout of the clients and
    # proxies in front (httpx 5 s, nginx/ingress upstreams 60 s, AWS ALB 60 s): the side that closes first must
    # be the client, or a request sent just as the server closes meets a reset connection. uvicorn's own
    # default (5 s) races httpx's 5 s; 75 s is nginx's default.
    keep_alive_seconds: float = Field(75.0, gt=0, le=3600)

    @property
    def max_request_bytes(self) -> int:
        """Largest multipart body accepted before parsing: every file at its limit plus its part headers."""
        return self.max_files * (self.max_upload_bytes + 4096)


@lru_cache
def get_settings() -> Settings:
    return Settings()

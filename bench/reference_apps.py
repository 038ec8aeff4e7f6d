"""The two reference servers serve_bench.py measures the service against, on the same uvicorn settings.

    uvicorn --app-dir bench --factory reference_apps:ceiling_app     # BENCH_CEILING_DIR=<folder of PNGs>
    uvicorn --app-dir bench --factory reference_apps:naive_app       # GVAE_STORE_ROOT, GVAE_DEVICE, ...

- ceiling: a bare FastAPI app that answers each route with a fixed PNG of the size the service answers (the
  files serve_bench.py saved from the service), after reading the request as any endpoint must (query,
  JSON body, multipart form). Nothing can be faster on this server stack: it is the cost of HTTP alone.
- naive: the service as the original PyTorch example would suggest writing it: plain `def` endpoints (run
  in FastAPI's thread pool), one forward pass per request under `torch.no_grad()`, and torchvision's
  `save_image` into a buffer (an RGB PNG at Pillow's default zlib level). No batching, no inference worker.
  It loads the same version from the store and uses the same torch thread count (GVAE_TORCH_THREADS) as the
  service, so the comparison is about the serving design, not about thread oversubscription.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response, UploadFile

PNG = "image/png"


def ceiling_app() -> FastAPI:
    folder = Path(os.environ["BENCH_CEILING_DIR"])
    answers = {path.stem: path.read_bytes() for path in folder.glob("*.png")}
    app = FastAPI(title="ceiling")

    @app.get("/v1/sample")
    async def sample(n: int = 64) -> Response:
        return Response(answers[f"sample_{n}"], media_type=PNG)

    @app.post("/v1/decode")
    async def decode(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        return Response(answers[f"decode_{len(body['codes'])}"], media_type=PNG)

    @app.post("/v1/reconstruct")
    async def reconstruct(request: Request) -> Response:
        async with request.form() as form:
            count = len(form.getlist("files"))
        return Response(answers[f"reconstruct_{count}"], media_type=PNG)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def naive_app() -> FastAPI:
    import torch
    from PIL import Image
    from torchvision.transforms.functional import to_tensor
    from torchvision.utils import save_image

    from model_store.registry import ModelStore

    threads = int(os.environ.get("GVAE_TORCH_THREADS", "1"))
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(os.environ.get("GVAE_DEVICE", "cpu"))
    model, _ = ModelStore(os.environ.get("GVAE_STORE_ROOT") or None).load_model("gvae", "latest", device=device)
    model.eval()
    app = FastAPI(title="naive")

    def png(images: torch.Tensor, nrow: int = 8) -> Response:
        buffer = io.BytesIO()
        save_image(images, buffer, format="png", nrow=nrow)
        return Response(buffer.getvalue(), media_type=PNG)

    @app.get("/v1/sample")
    def sample(n: int = 64, seed: int = 0, temperature: float = 1.0) -> Response:
        with torch.no_grad():
            images = model.sample(n, temperature, generator=torch.Generator(device).manual_seed(seed)).cpu()
        return png(images)

    @app.post("/v1/decode")
    def decode(body: dict[str, list[list[int]]]) -> Response:
        with torch.no_grad():
            images = model.decode(model.codes_to_one_hot(torch.tensor(body["codes"], device=device))).cpu()
        return png(images)

    @app.post("/v1/reconstruct")
    def reconstruct(files: list[UploadFile], seed: int = 0) -> Response:
        x = torch.stack([to_tensor(Image.open(f.file).convert("L")) for f in files]).to(device)
        with torch.no_grad():
            recon = model.reconstruct(x, generator=torch.Generator(device).manual_seed(seed)).cpu()
        return png(torch.cat([x.cpu(), recon]), nrow=len(files))

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app

"""Event-loop CPU per request of the service, the ceiling and the naive app, called in-process (no sockets).

    python bench/app_cost.py                                   # GET /v1/sample?n=1, 32 at a time, all three apps
    python bench/app_cost.py --apps service --path '/v1/sample?n=64' --concurrency 8
    py-spy record --gil -r 1000 -f raw -o app.txt -- python bench/app_cost.py --apps service --requests 9600

The ASGI app is driven directly by asyncio (`app(scope, receive, send)`), `--concurrency` requests at a time,
after its lifespan has run; the number is `time.thread_time()` of the event-loop thread per request, so it
leaves out the HTTP server (uvicorn + h11 cost the same for every app) and what other threads do (the service's
model worker). On a shared machine this is far steadier than req/s, and under py-spy it shows where the
event loop's time goes (see docs/bench-serve.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


async def call(app, path: str) -> bytes:  # noqa: ANN001 - any ASGI app
    route, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": route, "raw_path": route.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "state": {}}
    body = []
    status = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"{path} answered {status}: {b''.join(body)[:200]!r}")
    return b"".join(body)


async def measure(app, path: str, concurrency: int, requests: int) -> float:  # noqa: ANN001
    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm-up
            await call(app, path)
        rounds = max(1, requests // concurrency)
        start = time.thread_time()
        for _ in range(rounds):
            await asyncio.gather(*(call(app, path) for _ in range(concurrency)))
        return (time.thread_time() - start) / (rounds * concurrency)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", nargs="+", default=["ceiling", "naive", "service"],
                        choices=["ceiling", "naive", "service"])
    parser.add_argument("--path", default="/v1/sample?n=1", help="a GET route of all three apps")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3200)
    args = parser.parse_args()

    import torch
    from serve_bench import ensure_store

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="app-cost-"))
    store_root, model = ensure_store(work / "store")
    os.environ.update(GVAE_STORE_ROOT=store_root, GVAE_DEVICE="cpu", GVAE_LOG_LEVEL="warning",
                      BENCH_CEILING_DIR=str(work))
    from service.app import create_app

    service = create_app()
    answer = asyncio.run(lifespan_call(service, args.path))
    n = args.path.partition("n=")[2].split("&")[0] or "64"
    (work / f"sample_{n}.png").write_bytes(answer)  # the ceiling answers the service's PNG
    print(f"{model}; {args.path}, {args.concurrency} at a time, {args.requests} requests")
    for name in args.apps:
        if name == "service":
            app = create_app()
        else:
            import reference_apps

            app = getattr(reference_apps, f"{name}_app")()
        cost = asyncio.run(measure(app, args.path, args.concurrency, args.requests))
        print(f"{name:8s} {cost * 1e6:6.0f} us of event-loop CPU per request", flush=True)
    return 0


async def lifespan_call(app, path: str) -> bytes:  # noqa: ANN001
    async with app.router.lifespan_context(app):
        return await call(app, path)


if __name__ == "__main__":
    sys.exit(main())

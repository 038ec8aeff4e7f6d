"""Soak test: the real server under a mixed load for a while; counts errors and 5xx, and watches its memory.

    python bench/soak.py                                  # 60 s at 64 connections (+10 s warm-up), ~75 s
    python bench/soak.py --duration 5 --concurrency 8     # a quick look (what tests/service/test_soak.py runs)
    python bench/soak.py --store-root model_store/store   # the bundled model instead of a seeded untrained one

Starts `python -m service` on a free loopback port (a temporary store with an untrained model of the real
size unless --store-root is given), then `--concurrency` keep-alive connections (asyncio + httpx) send a mix
of GET /v1/sample?n=1, GET /v1/sample?n=16, POST /v1/decode, POST /v1/reconstruct and POST /v1/encode (a small
PNG) for `--warmup` seconds (not counted), then for `--duration` seconds or `--max-requests` requests.
Reports requests, errors (failed connections and non-200 answers), 5xx, p50/p99 latency per route, and the
server's RSS (VmRSS from /proc) after the warm-up and at the end. Targets: 0 errors, 0 5xx, RSS growth < 50 MB.
Prints a table and writes bench/results/soak.json (or --out). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_RSS_GROWTH_MB = 50
CODE = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7]


def digit_png() -> bytes:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Route:
    name: str
    method: str
    url: str
    json: dict | None = None
    files: list | None = None


def routes() -> list[Route]:
    png = digit_png()
    return [
        Route("sample n=1", "GET", "/v1/sample?n=1"),
        Route("sample n=16", "GET", "/v1/sample?n=16"),
        Route("decode", "POST", "/v1/decode", json={"codes": [CODE, CODE[::-1]]}),
        Route("reconstruct", "POST", "/v1/reconstruct", files=[("files", ("d.png", png, "image/png"))]),
        Route("encode", "POST", "/v1/encode?samples=2", files=[("files", ("d.png", png, "image/png"))]),
    ]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    failures: list[str] = field(default_factory=list)  # connection errors and first few bad answers
    requests: int = 0
    errors: int = 0


async def worker(client: httpx.AsyncClient, mix: list[Route], offset: int, stop_at: float, budget: list[int],
                 tally: Tally) -> None:
    i = offset
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        route = mix[i % len(mix)]
        i += 1
        start = time.perf_counter()
        try:
            response = await client.request(route.method, route.url, json=route.json, files=route.files)
            status = response.status_code
        except httpx.HTTPError as exc:
            tally.requests += 1
            tally.errors += 1
            if len(tally.failures) < 10:
                tally.failures.append(f"{route.name}: {type(exc).__name__}: {exc}")
            continue
        tally.requests += 1
        tally.statuses[status] += 1
        tally.latencies[route.name].append(time.perf_counter() - start)
        if status != 200:
            tally.errors += 1
            if len(tally.failures) < 10:
                tally.failures.append(f"{route.name}: {status} {response.text[:200]}")


async def drive(port: int, concurrency: int, seconds: float, max_requests: int) -> Tally:
    tally, mix, budget = Tally(), routes(), [max_requests]
    # the client gives up idle connections (5 s) well before the server closes them (GVAE_KEEP_ALIVE_SECONDS, 75 s)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(worker(client, mix, k, stop_at, budget, tally) for k in range(concurrency)))
    return tally


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store_root: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GVAE_")}
    env.update(GVAE_STORE_ROOT=str(store_root), GVAE_PORT=str(port), GVAE_LOG_LEVEL="warning", GVAE_DEVICE="cpu")
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server was not ready within 180 s")


def seeded_store(root: Path) -> Path:
    import torch

    from model_store.model import GumbelVAE, VAEConfig
    from model_store.registry import ModelStore

    torch.manual_seed(0)
    with ModelStore(root).register("gvae") as draft:
        draft.save_weights(GumbelVAE(VAEConfig()))
    return root


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def report(tally: Tally, seconds: float, rss_start: float, rss_end: float, args: argparse.Namespace) -> dict:
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    growth = rss_end - rss_start
    return {
        "duration_s": round(seconds, 1), "concurrency": args.concurrency, "warmup_s": args.warmup,
        "requests": tally.requests, "requests_per_s": round(tally.requests / seconds, 1),
        "errors": tally.errors, "server_errors_5xx": server_errors,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "latency_ms": {name: {"n": len(v), "p50": round(percentile(v, 0.5), 2), "p99": round(percentile(v, 0.99), 2)}
                       for name, v in tally.latencies.items()},
        "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_at_end": round(rss_end, 1),
        "rss_growth_mb": round(growth, 1), "failures": tally.failures,
        "targets": {"errors == 0": tally.errors == 0, "5xx == 0": server_errors == 0,
                    f"RSS growth < {MAX_RSS_GROWTH_MB} MB": growth < MAX_RSS_GROWTH_MB},
    }


def table(result: dict) -> str:
    lines = [f"soak: {result['requests']} requests in {result['duration_s']} s at {result['concurrency']} connections "
             f"({result['requests_per_s']} req/s), {result['errors']} errors, {result['server_errors_5xx']} 5xx",
             "", "| route | requests | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {v['n']} | {v['p50']} | {v['p99']} |" for name, v in result["latency_ms"].items()]
    lines += ["", f"RSS after warm-up {result['rss_mb_after_warmup']} MB, at the end {result['rss_mb_at_end']} MB "
                  f"(growth {result['rss_growth_mb']} MB)", ""]
    lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in result["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first RSS reading")
    parser.add_argument("--concurrency", type=int, default=64, help="connections, each one request at a time")
    parser.add_argument("--max-requests", type=int, default=500_000, help="stop after this many measured requests")
    parser.add_argument("--store-root", type=Path, help="serve this store's latest gvae (default: a seeded one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gvae-soak-") as tmp:
        store = args.store_root or seeded_store(Path(tmp))
        port = free_port()
        server = start_server(store, port)
        try:
            asyncio.run(drive(port, args.concurrency, args.warmup, args.max_requests))
            rss_start = rss_mb(server.pid)
            started = time.monotonic()
            tally = asyncio.run(drive(port, args.concurrency, args.duration, args.max_requests))
            seconds = time.monotonic() - started
            rss_end = rss_mb(server.pid)
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = report(tally, seconds, rss_start, rss_end, args) | {"readyz_after": ready,
                                                                 "server_exit_status": server.returncode}
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0 if all(result["targets"].values()) and ready == 200 else 1


if __name__ == "__main__":
    sys.exit(main())

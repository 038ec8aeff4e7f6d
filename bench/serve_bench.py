"""Serving benchmark: the service against its ceiling and a naive service, side by side, in one run.

    python bench/serve_bench.py                                   # ~5 min on 2 CPU cores; see docs/bench-serve.md
    python bench/serve_bench.py --duration 2 --concurrency 1 32   # a quicker look
    python bench/serve_bench.py --device cuda --out $OUT --doc $OUT/bench-serve-gpu.md

Three servers run on 127.0.0.1 (uvicorn, one process each, same flags: --no-access-log --log-level warning):

- service: `service.app:create_app` (dynamic batching, fast PNG path), configured by GVAE_* variables;
- ceiling: a bare FastAPI app answering a fixed PNG of the same size (bench/reference_apps.py);
- naive:   one forward pass per request and torchvision's save_image (bench/reference_apps.py).

For every route and concurrency the three are driven one after the other (who goes first rotates) by
bench/loadgen.py, a closed-loop client in a process of its own (the same client for all, so client cost
cancels out of the ratios), for `--duration` seconds and at most 100k requests each, after a short unrecorded
warm-up; `--rounds` passes over all cells, and a cell reports the mean req/s and median percentiles.
Routes: GET /v1/sample?n=1, GET /v1/sample?n=64, POST /v1/reconstruct (one 28x28 PNG), POST /v1/decode (one
code). Also measured: process start to /readyz 200
(median of `--startup-runs` starts) and the service's RSS after the benchmark. Prints a markdown table and
the targets, writes <out>/serve_bench.json and the table to `--doc`.

The served model is the bundled one when the store has it, else an untrained model of the same size (the
same compute) in a temporary store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVERS = {
    "service": "service.app:create_app",
    "ceiling": "bench.reference_apps:ceiling_app",
    "naive": "bench.reference_apps:naive_app",
}
CODE = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7]
BOUNDARY = "gvaebenchboundary"
NOTES_MARKER = "<!-- end of generated results: notes below are kept when the benchmark rewrites this file -->"


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    images: int  # images the model makes per request
    body: bytes = b""
    content_type: str | None = None
    ceiling_file: str = ""


def digit_png() -> bytes:
    """A 28x28 grayscale PNG of a drawn 7, light on black like MNIST."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28))
    ImageDraw.Draw(image).line([(7, 7), (21, 7), (12, 22)], fill=255, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def routes() -> list[Route]:
    part = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="digit.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + digit_png() + f"\r\n--{BOUNDARY}--\r\n".encode()
    return [
        Route("sample n=1", "GET", "/v1/sample?n=1", 1, ceiling_file="sample_1"),
        Route("sample n=64", "GET", "/v1/sample?n=64", 64, ceiling_file="sample_64"),
        Route("reconstruct", "POST", "/v1/reconstruct", 1, part, f"multipart/form-data; boundary={BOUNDARY}",
              "reconstruct_1"),
        Route("decode", "POST", "/v1/decode", 1, json.dumps({"codes": [CODE]}).encode(), "application/json",
              "decode_1"),
    ]


# ------------------------------------------------------------------------------------------ servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kind: str, env: dict[str, str]) -> None:
        self.kind = kind
        self.port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "--factory", SERVERS[kind], "--host", "127.0.0.1",
               "--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        started = time.perf_counter()
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.start_seconds = self.wait_ready(started)

    def wait_ready(self, started: float, timeout: float = 120) -> float:
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with status {self.process.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.kind} was not ready after {timeout} s")

    def request(self, route: Route) -> bytes:
        headers = {"Content-Type": route.content_type} if route.content_type else {}
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{route.path}", data=route.body or None,
                                     headers=headers, method=route.method)
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.read()

    def rss_mb(self) -> dict[str, float]:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines())
        return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------------------ load
def drive(server: Server, route: Route, concurrency: int, duration: float, body_file: Path) -> dict:
    body_file.write_bytes(route.body)
    cmd = [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--port", str(server.port), "--path", route.path,
           "--method", route.method, "--concurrency", str(concurrency), "--duration", str(duration)]
    if route.body:
        cmd += ["--body-file", str(body_file), "--header", f"Content-Type: {route.content_type}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 120)
    return json.loads(done.stdout)


def ensure_store(tmp: Path) -> tuple[str, str]:
    """(store root, description): the bundled model if there is one, else an untrained one of the same size."""
    from model_store.registry import ModelStore

    root = os.environ.get("GVAE_STORE_ROOT")
    store = ModelStore(root or None)
    if store.versions("gvae"):
        return str(store.root), f"gvae:{store.versions('gvae')[-1]} from {store.root}"
    import torch

    from model_store.model import GumbelVAE, VAEConfig

    torch.manual_seed(0)
    with ModelStore(tmp).register("gvae") as draft:
        draft.save_weights(GumbelVAE(VAEConfig()))
    return str(tmp), "an untrained gvae of the default size (no bundled model in the store yet)"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "load_average_at_start": os.getloadavg()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def batch_stats(server: Server) -> dict[str, float]:
    """Mean images and requests per decoder pass (float or uint8 output), from the service's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("network", "").startswith("decoder") and s.name.endswith(("_sum", "_count")):
                sums[s.name] = sums.get(s.name, 0) + s.value
    count = sums.get("gvae_batch_size_images_count", 0) or 1
    return {"decoder_passes": sums.get("gvae_batch_size_images_count", 0),
            "mean_images_per_pass": sums.get("gvae_batch_size_images_sum", 0) / count,
            "mean_requests_per_pass": sums.get("gvae_batch_requests_sum", 0) / count}


# ------------------------------------------------------------------------------------------ report
def table(results: list[dict]) -> str:
    ceiling = {(r["route"], r["concurrency"]): r["rps"] for r in results if r["server"] == "ceiling"}
    lines = ["| route | conc. | server | req/s | x ceiling | images/s | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        share = r["rps"] / ceiling[(r["route"], r["concurrency"])] if (r["route"], r["concurrency"]) in ceiling else 0
        name = f"**{r['server']}**" if r["server"] == "service" else r["server"]
        lines.append(f"| {r['route']} | {r['concurrency']} | {name} | {r['rps']:.0f} | {share:.2f} "
                     f"| {r['images_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
                     f"| {r['errors']} |")
    return "\n".join(lines)


def targets(results: list[dict], start_s: float, rss_mb: float) -> list[tuple[str, str, bool]]:
    def cell(route: str, server: str, conc: int = 32) -> dict | None:
        return next((r for r in results if (r["route"], r["server"], r["concurrency"]) == (route, server, conc)),
                    None)

    out: list[tuple[str, str, bool]] = []
    s1, c1, n1 = cell("sample n=1", "service"), cell("sample n=1", "ceiling"), cell("sample n=1", "naive")
    if s1 and c1 and n1:
        out.append(("sample n=1 @32: service / ceiling req/s >= 0.5", f"{s1['rps'] / c1['rps']:.2f}",
                    s1["rps"] / c1["rps"] >= 0.5))
        out.append(("sample n=1 @32: service / naive req/s >= 2", f"{s1['rps'] / n1['rps']:.1f}",
                    s1["rps"] / n1["rps"] >= 2))
    s64, n64 = cell("sample n=64", "service"), cell("sample n=64", "naive")
    if s64 and n64:
        out.append(("sample n=64 @32: service / naive req/s >= 2", f"{s64['rps'] / n64['rps']:.1f}",
                    s64["rps"] / n64["rps"] >= 2))
    for r in results:
        if r["server"] == "service" and r["concurrency"] == 32:
            ratio = r["p99_ms"] / r["p50_ms"]
            out.append((f"{r['route']} @32: service p99 <= 4 x p50", f"{ratio:.2f}", ratio <= 4))
    out.append(("process start to /readyz 200 <= 3 s", f"{start_s:.2f} s", start_s <= 3))
    out.append(("service RSS after the benchmark <= 700 MB", f"{rss_mb:.0f} MB", rss_mb <= 700))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=2.5, help="seconds per cell (server x route x conc.)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over all cells; a cell reports their mean")
    parser.add_argument("--warmup", type=float, default=0.5, help="unrecorded seconds per server and route")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--device", default="cpu", help="GVAE_DEVICE of the service and the naive server")
    parser.add_argument("--startup-runs", type=int, default=3, help="service starts timed (median reported)")
    parser.add_argument("--out", default="bench/results", help="folder for serve_bench.json")
    parser.add_argument("--doc", default="docs/bench-serve.md", help="markdown copy of the results ('' for none)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    store_root, model = ensure_store(work / "store")
    env = {**os.environ, "GVAE_STORE_ROOT": store_root, "GVAE_DEVICE": args.device, "GVAE_LOG_LEVEL": "warning",
           "BENCH_CEILING_DIR": str(work), "PYTHONPATH": str(ROOT)}
    info = machine()
    print(f"serving {model} on {args.device}; {info['cpu']}, {info['cores']} cores, "
          f"load {info['load_average_at_start']}", flush=True)

    starts = []
    for _ in range(max(0, args.startup_runs - 1)):
        server = Server("service", env)
        starts.append(server.start_seconds)
        server.stop()
    service = Server("service", env)
    starts.append(service.start_seconds)
    all_routes = routes()
    for route in all_routes:  # the ceiling answers exactly the service's PNG sizes
        (work / f"{route.ceiling_file}.png").write_bytes(service.request(route))
    servers = {"service": service, "ceiling": Server("ceiling", env), "naive": Server("naive", env)}
    print(f"start to /readyz: {', '.join(f'{s:.2f}' for s in starts)} s", flush=True)

    cells: dict[tuple[str, int, str], list[dict]] = {}
    body = work / "body.bin"
    began = time.perf_counter()
    for rnd in range(args.rounds):
        for i, route in enumerate(all_routes):
            if rnd == 0:
                for server in servers.values():
                    drive(server, route, 8, args.warmup, body)
            for j, conc in enumerate(args.concurrency):
                k = (i + j + rnd) % 3
                order = list(servers)[k:] + list(servers)[:k]  # who goes first rotates
                for kind in order:
                    r = drive(servers[kind], route, conc, args.duration, body)
                    cells.setdefault((route.name, conc, kind), []).append(r)
                    print(f"round {rnd + 1} {route.name:12s} c={conc:<3d} {kind:8s} {r['rps']:8.1f} req/s  "
                          f"p50 {r['p50_ms']:7.1f} p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}", flush=True)
    images = {route.name: route.images for route in all_routes}
    results = [summarise(rounds, route=name, concurrency=conc, server=kind, images=images[name])
               for (name, conc, kind), rounds in cells.items()]
    rss = {kind: s.rss_mb() for kind, s in servers.items()}
    batching = batch_stats(service)
    for s in servers.values():
        s.stop()
    order_key = {name: k for k, name in enumerate(SERVERS)}
    results.sort(key=lambda r: ([x.name for x in all_routes].index(r["route"]), r["concurrency"],
                                order_key[r["server"]]))
    start_s = statistics.median(starts)
    checks = targets(results, start_s, rss["service"]["VmRSS"])
    info["load_average_at_end"] = os.getloadavg()
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": info, "model": model,
        "device": args.device, "duration_s": args.duration, "rounds": args.rounds,
        "bench_seconds": time.perf_counter() - began,
        "service_settings": {k: v for k, v in os.environ.items() if k.startswith("GVAE_")},
        "start_to_ready_s": starts, "rss_mb": rss, "batching": batching, "results": results,
        "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in checks],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    print("\n" + text)
    if args.doc:
        doc = Path(args.doc)
        notes = doc.read_text().partition(NOTES_MARKER)[2] if doc.exists() else ""
        doc.write_text(text + (f"\n{NOTES_MARKER}{notes}" if notes else ""))
    return 0


def summarise(rounds: list[dict], **cell: object) -> dict:
    """One cell over its rounds: mean req/s, median percentiles, all errors; the rounds kept as they were."""
    out: dict = dict(cell)
    out["rps"] = statistics.mean(r["rps"] for r in rounds)
    out["images_per_s"] = out["rps"] * int(cell["images"])  # type: ignore[call-overload]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        out[key] = statistics.median(r[key] for r in rounds)
    out["errors"] = sum(r["errors"] for r in rounds)
    out["requests"] = sum(r["requests"] for r in rounds)
    out["rounds"] = rounds
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    b = report["batching"]
    lines = [
        "# Serving benchmark", "",
        f"`{report['command']}`: {report['rounds']} rounds of {report['duration_s']:g} s per cell (mean req/s, "
        f"median percentiles), {report['bench_seconds'] / 60:.1f} min in all. Service settings: "
        f"{', '.join(f'{k}={v}' for k, v in sorted(report['service_settings'].items())) or 'defaults'}.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores{', ' + m['gpu'] if 'gpu' in m else ''}; Python {m['python']}, "
        f"torch {m['torch']}; device `{report['device']}`; load average {m['load_average_at_start'][0]:.1f} at the "
        f"start, {m['load_average_at_end'][0]:.1f} at the end (the machine was shared: compare servers within a "
        f"row group, not across runs). Model: {report['model']}.",
        "",
        "Servers: **service** (dynamic batching, fast PNG), **ceiling** (bare FastAPI answering a fixed PNG of the "
        "same size), **naive** (per-request forward + torchvision `save_image`). Same uvicorn flags, same "
        "closed-loop client (bench/loadgen.py) in its own process.",
        "",
        table(report["results"]),
        "",
        f"Service batching over the run: {b['decoder_passes']:.0f} decoder passes, "
        f"{b['mean_images_per_pass']:.1f} images and {b['mean_requests_per_pass']:.1f} requests per pass on average.",
        "",
        "| target | measured | met |", "|---|---:|---|",
        *[f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in report["targets"]],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Checks a running gvae-serve over HTTP like a client would; standard library only, so it runs anywhere.

    python3 scripts/probe_service.py http://127.0.0.1:8000 --wait 180           # smoke: sample + reconstruct
    python3 scripts/probe_service.py URL --all --expect-device cuda --throughput 20

`--wait` polls /readyz first; `--all` also calls every other route (and GETs any route of the OpenAPI schema
this script does not know yet, path parameters set to the served version); `--throughput B` times B
POST /v1/decode requests of 256 codes each.
Every PNG answer is fully checked: signature, chunk CRCs, IHDR, and the size of the inflated pixel data.
Exits 1 with the failing check named.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
BATCH = 256  # images per decode request in the throughput test (the service's ceiling)


class CheckFailed(Exception):
    pass


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def check_png(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) of a well-formed 8-bit PNG; raises CheckFailed naming what is wrong."""
    expect(data[:8] == PNG_SIGNATURE, f"{what}: not a PNG (starts with {data[:8]!r})")
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        expect(pos + 12 <= len(data), f"{what}: truncated chunk at byte {pos}")
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        expect(zlib.crc32(kind + body) == crc, f"{what}: bad CRC in {kind!r} chunk")
        chunks.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    expect(chunks[0] == b"IHDR" and chunks[-1] == b"IEND", f"{what}: chunks out of order: {chunks}")
    expect(depth == 8 and interlace == 0 and colour in CHANNELS, f"{what}: unexpected IHDR {depth=} {colour=}")
    raw = zlib.decompress(idat)
    expected = height * (1 + width * CHANNELS[colour])  # one filter byte per row
    expect(len(raw) == expected, f"{what}: {len(raw)} bytes of pixel data, expected {expected}")
    return width, height


def digit_png(size: int = 28) -> bytes:
    """A light ring on black (a hand-drawn zero, MNIST style) as an 8-bit grayscale PNG."""
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            r = ((x - size / 2 + 0.5) ** 2 / 0.45 + (y - size / 2 + 0.5) ** 2) ** 0.5
            row.append(255 if 6 <= r <= 9 else 0)
        rows.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n" for name, content in files]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def get_json(base: str, path: str) -> Any:
    status, _, body = request(base + path)
    expect(status == 200, f"GET {path}: status {status}: {body[:300]!r}")
    return json.loads(body)


def wait_ready(base: str, timeout: float) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            status, _, body = request(base + "/readyz", timeout=5)
            if status == 200:
                return json.loads(body)
            last = f"status {status}"
        except OSError as exc:  # refused while the server starts
            last = str(exc)
        time.sleep(1)
    raise CheckFailed(f"/readyz not ready after {timeout:.0f} s ({last})")


def check_sample(base: str) -> None:
    status, headers, body = request(base + "/v1/sample?n=16&nrow=4&seed=7")
    expect(status == 200 and headers.get("content-type") == "image/png", f"GET /v1/sample: {status} {body[:300]!r}")
    size = check_png(body, "/v1/sample")
    expect(size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2), f"/v1/sample: a 4x4 grid should be 122x122, got {size}")
    again = request(base + "/v1/sample?n=16&nrow=4&seed=7")[2]
    expect(again == body, "/v1/sample: the same seed gave a different image")
    print(f"ok   GET /v1/sample: {len(body)} bytes, {size[0]}x{size[1]} PNG, reproducible with its seed")


def check_reconstruct(base: str) -> None:
    body, headers = multipart([("zero.png", digit_png()), ("zero2.png", digit_png())])
    status, answer_headers, answer = request(base + "/v1/reconstruct?mode=mean", body, headers)
    expect(status == 200 and answer_headers.get("content-type") == "image/png",
           f"POST /v1/reconstruct: {status} {answer[:300]!r}")
    size = check_png(answer, "/v1/reconstruct")
    expect(size == (2 * 30 + 2, 2 * 30 + 2), f"/v1/reconstruct: 2 inputs above 2 reconstructions is 62x62, got {size}")
    print(f"ok   POST /v1/reconstruct: {size[0]}x{size[1]} PNG (inputs above reconstructions)")


def check_everything(base: str, expect_device: str | None) -> None:
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready"):
        expect(get_json(base, path)["status"] in ("alive", "ready"), f"GET {path}")
    current = get_json(base, "/v1/models/current")
    n, k = current["metadata"]["model_config"]["latent_dim"], current["metadata"]["model_config"]["categorical_dim"]
    print(f"ok   GET /v1/models/current: {current['tag']} on {current['device']} (N={n}, K={k})")
    if expect_device:
        expect(current["device"].startswith(expect_device), f"served on {current['device']}, expected {expect_device}")
    listed = get_json(base, "/v1/models")
    expect(listed["serving"] == current["tag"], f"/v1/models serving {listed['serving']}, current {current['tag']}")
    encoded = request(base + "/v1/encode?samples=2&seed=0", *multipart([("zero.png", digit_png())]))
    expect(encoded[0] == 200, f"POST /v1/encode: {encoded[0]} {encoded[2][:300]!r}")
    code = json.loads(encoded[2])["results"][0]["code"]
    expect(len(code) == n, f"/v1/encode: code of length {len(code)}, expected N={n}")
    for what, payload in (("codes", {"codes": [code]}), ("logits", {"logits": [[[0.0] * k] * n] * 3})):
        status, _, png = request(base + "/v1/decode?seed=1", json.dumps(payload).encode(),
                                 {"Content-Type": "application/json"})
        expect(status == 200, f"POST /v1/decode ({what}): {status} {png[:300]!r}")
        check_png(png, f"/v1/decode ({what})")
    print("ok   POST /v1/encode, POST /v1/decode (codes and logits), GET /v1/models, health probes")
    bad = request(base + "/v1/sample?temperature=0")
    expect(bad[0] == 422, f"GET /v1/sample?temperature=0 should answer 422, got {bad[0]}")
    known = {"/healthz", "/v2/health/live", "/readyz", "/v2/health/ready", "/v1/models", "/v1/models/current",
             "/v1/sample", "/v1/decode", "/v1/encode", "/v1/reconstruct"}
    schema = get_json(base, "/openapi.json")
    for template, methods in sorted(schema["paths"].items()):
        if template in known or "get" not in methods:
            continue
        path = re.sub(r"\{[^}]*\}", str(current["version"]), template)  # e.g. /v1/models/{version}/card
        status, headers, _ = request(base + path)
        # a version registered without a training record answers 404 for its record files, by design
        expect(status in (200, 404), f"GET {path}: status {status}")
        print(f"ok   GET {path}: {status} {headers.get('content-type', '')}")
    for path in ("/docs", "/"):
        status = request(base + path)[0]
        expect(status in (200, 404), f"GET {path}: status {status}")


def throughput(base: str, batches: int) -> None:
    current = get_json(base, "/v1/models/current")
    n, k = current["metadata"]["model_config"]["latent_dim"], current["metadata"]["model_config"]["categorical_dim"]
    rng = random.Random(0)
    body = json.dumps({"codes": [[rng.randrange(k) for _ in range(n)] for _ in range(BATCH)]}).encode()
    headers = {"Content-Type": "application/json"}
    request(base + "/v1/decode?nrow=16", body, headers)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        status, _, png = request(base + "/v1/decode?nrow=16", body, headers)
        expect(status == 200, f"POST /v1/decode: {status}")
    seconds = time.perf_counter() - start
    check_png(png, "/v1/decode (256 codes)")
    print(f"throughput: {batches} x POST /v1/decode of {BATCH} codes on {current['device']}: "
          f"{batches * BATCH / seconds:,.0f} images/s, {1000 * seconds / batches:.1f} ms/request "
          "(HTTP + JSON + decode + PNG grid)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for /readyz first")
    parser.add_argument("--all", action="store_true", help="call every route, not only sample + reconstruct")
    parser.add_argument("--expect-device", help="fail unless /v1/models/current reports this device (e.g. cuda)")
    parser.add_argument("--throughput", type=int, default=0, metavar="B", help="time B decode requests of 256")
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/")
    try:
        ready = wait_ready(base, args.wait) if args.wait else get_json(base, "/readyz")
        print(f"ok   GET /readyz: {ready}")
        check_sample(base)
        check_reconstruct(base)
        if args.all or args.expect_device:
            check_everything(base, args.expect_device)
        if args.throughput:
            throughput(base, args.throughput)
    except (CheckFailed, OSError, ValueError, KeyError) as exc:
        print(f"FAIL {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

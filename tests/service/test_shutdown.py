"""SIGTERM with requests in flight: the real server (`python -m service`, a subprocess on a loopback port)
finishes them within GVAE_GRACEFUL_SHUTDOWN_SECONDS and exits 0; one that outlives the grace is cut off and the
process still exits, on time."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODES = json.dumps({"codes": [[3] * 30] * 4}).encode()
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store_root: Path, grace_s: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GVAE_")}
    env.update(GVAE_STORE_ROOT=str(store_root), GVAE_PORT=str(port), GVAE_DEVICE="cpu", GVAE_LOG_LEVEL="warning",
               GVAE_GRACEFUL_SHUTDOWN_SECONDS=str(grace_s), GVAE_TORCH_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode} before it was ready"
        try:
            if get(port, "/readyz")[0] == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the server was not ready within 120 s")


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def half_sent_decode(port: int) -> socket.socket:
    """A /v1/decode request whose headers and first half of the body are sent: it is in flight until the rest."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /v1/decode?seed=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(CODES)}\r\n\r\n").encode()
    sock.sendall(head + CODES[:len(CODES) // 2])
    return sock


def finish_and_read_status(sock: socket.socket) -> int:
    sock.sendall(CODES[len(CODES) // 2:])
    status_line = sock.makefile("rb").readline()
    sock.close()
    return int(status_line.split()[1])


@pytest.fixture()
def server_factory(store_root: Path) -> Iterator:
    started: list[subprocess.Popen] = []

    def start(grace_s: float) -> tuple[subprocess.Popen, int]:
        process, port = start_server(store_root, grace_s)
        started.append(process)
        return process, port

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_lets_requests_in_flight_finish_and_exits_0(server_factory) -> None:
    process, port = server_factory(grace_s=10)
    half_sent = half_sent_decode(port)
    with ThreadPoolExecutor(4) as pool:
        samples = [pool.submit(get, port, f"/v1/sample?n=256&scale=8&seed={i}") for i in range(4)]
        time.sleep(0.3)  # the sample requests are read and waiting for the model
        sent_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # shutting down: no new connections, the open ones go on
        assert finish_and_read_status(half_sent) == 200
        statuses = [future.result()[0] for future in samples]
    assert statuses == [200] * 4
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - sent_at < 10


def test_a_request_outliving_the_grace_is_cut_off_and_the_server_still_exits_0(server_factory) -> None:
    process, port = server_factory(grace_s=1)
    stuck = half_sent_decode(port)  # never finished
    sent_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - sent_at < 6  # the grace (1 s) plus the shutdown of the model thread
    stuck.close()

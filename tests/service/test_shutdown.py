"""The real server process (`python -m service`, a subprocess on a loopback port): on SIGTERM it finishes the
requests in flight within GVAE_GRACEFUL_SHUTDOWN_SECONDS and exits 0 (one that outlives the grace is cut off and
the process still exits, on time); idle keep-alive connections live GVAE_KEEP_ALIVE_SECONDS, longer than the
idle timeouts of common clients and proxies, so it is never the server that closes a connection a client reuses."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import get, start_server_process

CODES = json.dumps({"codes": [[3] * 30] * 4}).encode()
pytestmark = pytest.mark.slow



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

    def start(**env: str) -> tuple[subprocess.Popen, int]:
        process, port = start_server_process(store_root, **env)
        started.append(process)
        return process, port

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_lets_requests_in_flight_finish_and_exits_0(server_factory) -> None:
    process, port = server_factory(GVAE_GRACEFUL_SHUTDOWN_SECONDS="10")
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
    process, port = server_factory(GVAE_GRACEFUL_SHUTDOWN_SECONDS="1")
    stuck = half_sent_decode(port)  # never finished
    sent_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - sent_at < 6  # the grace (1 s) plus the shutdown of the model thread
    stuck.close()


def request_on(sock: socket.socket, path: str) -> int:
    """Sends GET `path` on an open keep-alive connection and reads the whole answer; its status."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response.status


def test_an_idle_keep_alive_connection_outlives_the_idle_timeouts_of_clients_and_proxies(server_factory) -> None:
    """uvicorn's default (5 s) closes it first: the next request a client sends on it meets a reset connection."""
    _, port = server_factory()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert request_on(sock, "/healthz") == 200
        time.sleep(6)  # longer than uvicorn's default keep-alive and httpx's keepalive_expiry (both 5 s)
        assert request_on(sock, "/v1/sample?n=1&seed=0") == 200


def test_connections_idle_longer_than_GVAE_KEEP_ALIVE_SECONDS_are_closed(server_factory) -> None:
    _, port = server_factory(GVAE_KEEP_ALIVE_SECONDS="1")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert request_on(sock, "/healthz") == 200
        time.sleep(2.5)
        assert sock.recv(1) == b"", "the server closed the idle connection"

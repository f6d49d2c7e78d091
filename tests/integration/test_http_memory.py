"""Bounded memory both ways, in a real forked worker: a 1 GiB upload through an app that reads
slower than the client sends, and a 1 GiB download to a client that reads slower than the app
writes. The worker's peak RSS (VmHWM) must stay within 64 MiB of its idle RSS: reading pauses
while the app holds ``max_buffer`` unread bytes, and the app's ``send`` waits while the socket
buffer is full."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from prefork.testing import http_request, running_server

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
BOUND = 64 * MIB

pytestmark = pytest.mark.timeout(60)


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


@pytest.fixture
def worker(parser: str, request: pytest.FixtureRequest) -> Iterator[tuple[Any, int]]:
    app = request.param
    with running_server(f"tests.integration.apps:{app}", workers=1, http=parser,
                        lifespan="off") as server:
        (pid,) = server.worker_pids()
        http_request(server.port, "/?1")  # warm the worker up before measuring its idle size
        yield server, pid


@pytest.mark.parametrize("worker", ["slow_upload"], indirect=True)
def test_upload_1gib_with_slow_app(worker: tuple[Any, int]) -> None:
    server, pid = worker
    idle = _status_kib(pid, "VmRSS")
    piece = memoryview(b"u" * MIB)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GIB)
        for _ in range(GIB // MIB):
            sock.sendall(piece)
        response = b""
        while not response.endswith(b"%d" % GIB):
            data = sock.recv(4096)
            assert data, response
            response += data
    elapsed = time.monotonic() - started
    peak = _status_kib(pid, "VmHWM")
    print(f"upload: 1 GiB in {elapsed:.1f}s; idle RSS {idle / MIB:.1f} MiB, "
          f"peak {peak / MIB:.1f} MiB")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert peak - idle < BOUND


@pytest.mark.parametrize("worker", ["big_download"], indirect=True)
def test_download_1gib_to_slow_client(worker: tuple[Any, int]) -> None:
    server, pid = worker
    idle = _status_kib(pid, "VmRSS")
    buffer = bytearray(256 * 1024)
    received = 0
    reads = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
        sock.sendall(b"GET /?1024 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while True:
            count = sock.recv_into(buffer)
            if not count:
                break
            received += count
            reads += 1
            if reads % 512 == 0:
                time.sleep(0.002)  # slower than the app can write
    elapsed = time.monotonic() - started
    peak = _status_kib(pid, "VmHWM")
    print(f"download: 1 GiB in {elapsed:.1f}s; idle RSS {idle / MIB:.1f} MiB, "
          f"peak {peak / MIB:.1f} MiB")
    assert received > GIB  # the head plus every body byte
    assert peak - idle < BOUND

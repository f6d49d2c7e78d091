"""Clients that ask for a large answer and never read it, on real workers.

Each stalled client is a raw socket with a small receive buffer that sends its request and then
reads nothing: what the server wrote waits in the kernel's buffers and then in the worker's.
The send timeout (``--send-timeout``) must abort such a connection, free its memory and its
``--worker-connections`` slot and release any pool thread waiting on it; until then a
one-piece body must not be copied whole into the transport's buffer.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import struct
import termios
import time
from collections.abc import Iterator

import pytest

from prefork.server import Server
from prefork.testing import http_request, running_server, wait_until

WSGI = "tests.apps.slowclients:wsgi"
ASGI = "tests.apps.slowclients:asgi"


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576


def _sockets(pid: int) -> int:
    """How many sockets the process holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def _connections(server: Server) -> int:
    """The connections the worker counts (against --worker-connections), as it last said."""
    return int(server.stats()["workers"][0]["connections"])


def _stalled(port: int, path: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def _unread(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive buffer: the server has answered once it is > 0."""
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    return count[0]


@contextlib.contextmanager
def _stalled_clients(port: int, path: str, count: int) -> Iterator[list[socket.socket]]:
    clients = [_stalled(port, path) for _ in range(count)]
    try:
        wait_until(lambda: all(_unread(sock) for sock in clients), timeout=30)
        yield clients
    finally:
        for sock in clients:
            sock.close()


@pytest.mark.timeout(180)
def test_rounds_of_stalled_clients_of_large_bodies_do_not_grow_the_worker() -> None:
    """Four rounds of five: each round takes every --worker-connections slot, and the next
    round comes once a slot is free again. Each stalled client's 50 MB body is held until its
    connection is aborted; a connection that only leaves the count keeps it for ever."""
    with running_server(WSGI, workers=1, worker_connections=5, send_timeout=2,
                        keepalive=3) as server:
        [worker] = server.worker_pids()
        assert http_request(server.port, "/")[0] == 200
        before = _rss_mb(worker)
        rounds: list[socket.socket] = []
        try:
            for _ in range(4):
                clients = [_stalled(server.port, "/big") for _ in range(5)]
                rounds += clients
                wait_until(lambda: all(_unread(sock) for sock in clients), timeout=30)  # noqa: B023 - used at once
                heads = [sock.recv(12, socket.MSG_PEEK) for sock in clients]
                assert heads == [b"HTTP/1.1 200"] * 5, heads
                # counted (as the worker reports them, once a second), then no longer
                wait_until(lambda: _connections(server) >= 5, timeout=30, interval=0.1)
                wait_until(lambda: _connections(server) == 0, timeout=30, interval=0.1)
            grown = _rss_mb(worker) - before
        finally:
            for sock in rounds:
                sock.close()
        # Before the send timeout, 20 such clients grew the worker by 1 GB.
        assert grown < 150, f"the worker grew by {grown:.0f} MB for 20 stalled clients"
        print(f"20 stalled clients of a 50 MB body: the worker grew by {grown:.0f} MB")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["/big", "/stream", "/file"])
def test_stalled_clients_are_aborted_after_the_send_timeout(path: str) -> None:
    with running_server(WSGI, workers=1, worker_connections=5, send_timeout=2,
                        keepalive=1) as server:
        [worker] = server.worker_pids()
        idle_sockets = _sockets(worker)
        with _stalled_clients(server.port, path, 5):
            assert http_request(server.port, "/")[0] == 503  # every slot is taken
            started = time.monotonic()
            # served once the send timeout has freed the slots, never 503 again after that
            wait_until(lambda: http_request(server.port, "/")[0] == 200, timeout=20,
                       interval=0.2)
            freed_after = time.monotonic() - started
            # and the connections are gone, not only uncounted: their buffers are freed
            wait_until(lambda: _sockets(worker) <= idle_sockets, timeout=10)
            assert [http_request(server.port, "/")[0] for _ in range(5)] == [200] * 5
        print(f"{path}: 5 stalled clients aborted, slots free after {freed_after:.1f}s")


@pytest.mark.timeout(120)
def test_stalled_streaming_clients_do_not_hold_the_thread_pool() -> None:
    with running_server(WSGI, workers=1, threads=4, send_timeout=2) as server:
        with _stalled_clients(server.port, "/stream", 4):
            started = time.monotonic()
            status = http_request(server.port, "/", timeout=20)[0]
            waited = time.monotonic() - started
        assert status == 200
        print(f"a GET behind 4 stalled streaming clients on 4 threads answered in {waited:.1f}s")


def _ping_frames(count: int) -> bytes:
    """``count`` masked client pings, 125 bytes of payload each (RFC 6455 §5.2)."""
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"p" * 125))
    return (struct.pack("!BB", 0x89, 0x80 | 125) + mask + payload) * count


@pytest.mark.timeout(120)
def test_a_websocket_ping_flood_that_reads_no_pong_does_not_grow_the_worker() -> None:
    with running_server(ASGI, workers=1, send_timeout=5) as server:
        [worker] = server.worker_pids()
        assert http_request(server.port, "/")[0] == 200
        before = _rss_mb(worker)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)  # one byte at a time: nothing past the 101 is read
        assert head.startswith(b"HTTP/1.1 101")
        block = _ping_frames(8000)  # about 1 MB
        sent = 0
        sock.settimeout(2)  # a send blocked this long: the server stopped reading
        with sock:
            try:
                while sent < 300 * 1048576:
                    sock.sendall(block)
                    sent += len(block)
            except TimeoutError:
                pass
            grown = _rss_mb(worker) - before
            started = time.monotonic()
            status = http_request(server.port, "/", timeout=20)[0]
            waited = time.monotonic() - started
        assert status == 200
        # Reading everything and queueing every pong grew the worker by about 300 MB.
        assert grown < 60, f"the worker grew by {grown:.0f} MB for {sent >> 20} MB of pings"
        print(f"ping flood: {sent >> 20} MB sent before the server stopped reading, worker "
              f"+{grown:.0f} MB, another request answered in {waited:.2f}s")

"""The arbiter's bounded client loop and ``/metrics`` on it, driven in this process by a real
selector on real sockets, as the arbiter's loop drives them."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
from collections.abc import Callable, Iterator

import pytest

from prefork.arbiter.clients import ClientLoop
from prefork.metrics.endpoint import MetricsEndpoint

pytestmark = pytest.mark.timeout(20)

LOG = logging.getLogger("prefork.error")
EXPOSITION = "# TYPE up gauge\nup 1\n"


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _turn(selector: selectors.BaseSelector, timeout: float = 0.05) -> None:
    for key, _events in selector.select(timeout):
        key.data(key)


def _until(selector: selectors.BaseSelector, done: Callable[[], bool]) -> None:
    for _ in range(200):
        if done():
            return
        _turn(selector)
    raise AssertionError("the loop never got there")


@contextlib.contextmanager
def _endpoint(parser: str) -> Iterator[tuple[MetricsEndpoint, selectors.BaseSelector]]:
    selector = selectors.DefaultSelector()
    endpoint = MetricsEndpoint(_listener(), lambda: EXPOSITION, lambda: 0.0, LOG, parser)
    endpoint.start(selector)
    try:
        yield endpoint, selector
    finally:
        endpoint.close()
        selector.close()


def _ask(endpoint: MetricsEndpoint, selector: selectors.BaseSelector, *pieces: bytes) -> bytes:
    """Send ``pieces`` one loop turn apart; the whole reply, read until the server closes."""
    client = socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)
    with client:
        for piece in pieces:
            client.sendall(piece)
            _turn(selector)
        client.setblocking(False)
        reply = b""
        for _ in range(200):
            _turn(selector)
            try:
                chunk = client.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                return reply
            reply += chunk
    raise AssertionError(f"no close after {reply!r}")


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_metrics_are_served_through_the_engine(parser: str) -> None:
    with _endpoint(parser) as (endpoint, selector):
        reply = _ask(endpoint, selector, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-type: text/plain; version=0.0.4" in head.lower()
        assert b"connection: close" in head.lower() and b"date: " in head.lower()
        assert body == EXPOSITION.encode()

        head = _ask(endpoint, selector, b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert b"content-length: %d" % len(EXPOSITION) in head.lower()

        # A request in pieces, an HTTP/1.0 one, then what the old hand-written parser let by.
        pieces = (b"GET /met", b"rics HTTP/1.0\r\n", b"\r\n")
        assert _ask(endpoint, selector, *pieces).startswith(b"HTTP/1.1 200 OK\r\n")
        assert _ask(endpoint, selector, b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n").startswith(
            b"HTTP/1.1 404 ")
        post = _ask(endpoint, selector, b"POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert post.startswith(b"HTTP/1.1 405 ") and b"\r\nallow: GET, HEAD\r\n" in post
        for hostile, status in [(b"[" * 2000 + b"\r\n\r\n", b"400"),
                                (b"GET /metrics HTTP/1.1\r\nx: " + b"y" * 100_000, b"431"),
                                (b"GET /metrics HTTP/1.1\r\n\r\n", b"400"),  # no Host
                                (b"GET /metrics HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n",
                                 b"400")]:
            assert _ask(endpoint, selector, hostile).startswith(b"HTTP/1.1 " + status), hostile
        assert not endpoint.clients.clients


class _Line:
    """Answers the first line with itself; raises on "boom"."""

    def __init__(self) -> None:
        self.inbox = b""

    def received(self, data: bytes) -> bytes | None:
        self.inbox += data
        if self.inbox.startswith(b"boom"):
            raise RuntimeError("boom")
        return self.inbox if b"\n" in self.inbox else None


@contextlib.contextmanager
def _loop(close_oldest: bool, now: list[float]) -> Iterator[tuple[ClientLoop,
                                                                   selectors.BaseSelector]]:
    selector = selectors.DefaultSelector()
    loop = ClientLoop(_listener(), "test", lambda _sock: _Line(), LOG,
                      close_oldest=close_oldest, clock=lambda: now[0], max_clients=2,
                      deadline=5.0)
    loop.start(selector)
    try:
        yield loop, selector
    finally:
        loop.close()
        selector.close()


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("close_oldest", [True, False])
def test_one_client_over_the_limit_closes_the_oldest_or_the_newcomer(close_oldest: bool) -> None:
    now = [0.0]
    with _loop(close_oldest, now) as (loop, selector):
        port = loop.listener.getsockname()[1]
        first, second = (socket.create_connection(("127.0.0.1", port)) for _ in range(2))
        _until(selector, lambda: len(loop.clients) == 2)
        third = socket.create_connection(("127.0.0.1", port))
        with first, second, third:
            _turn(selector)
            _until(selector, lambda: _closed(first) if close_oldest else _closed(third))
            assert len(loop.clients) == 2
            (second if close_oldest else first).sendall(b"hello\n")
            reply = second if close_oldest else first
            _until(selector, lambda: not reply.setblocking(False) and _readable(reply))
            assert reply.recv(100) == b"hello\n"


def _readable(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False


def test_silent_clients_expire_and_a_failing_session_closes_only_its_client(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    with _loop(False, now) as (loop, selector):
        port = loop.listener.getsockname()[1]
        silent = socket.create_connection(("127.0.0.1", port))
        _until(selector, lambda: len(loop.clients) == 1)
        now[0] = 4.0
        failing = socket.create_connection(("127.0.0.1", port))
        with silent, failing:
            _until(selector, lambda: len(loop.clients) == 2)
            loop.expire(5.5)  # past the first client's deadline, not the second's
            assert _closed(silent) and len(loop.clients) == 1
            failing.sendall(b"boom\n")
            _until(selector, lambda: not loop.clients)
            assert _closed(failing)
            assert "test: serving a client failed" in caplog.text

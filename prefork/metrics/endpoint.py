"""The arbiter's ``/metrics`` responder: the HTTP engine behind the arbiter's bounded client loop.

The arbiter runs no thread, so ``/metrics`` is served from its selector loop by
:class:`prefork.arbiter.clients.ClientLoop` (at most ``MAX_CLIENTS`` connections, a new one
closing the oldest; ``CLIENT_DEADLINE`` seconds from connect until the reply is written). Each
connection's bytes go through the same :class:`~prefork.http.ServerConnection` as a worker's,
so a scrape is parsed and refused exactly as a request to the app would be (400, 431, ...):
``GET /metrics`` (or ``HEAD``; any query string is ignored) gets the exposition, another path
404, another method 405. One response per connection, then close.

Bound with ``SO_REUSEPORT`` (as the reuseport listeners are), so that during a binary upgrade
the new arbiter can bind the same address while the old one still serves it.
"""

from __future__ import annotations

import logging
import selectors
import socket
from collections.abc import Callable

from prefork.arbiter.clients import CLIENT_DEADLINE, MAX_CLIENTS, ClientLoop
from prefork.errors import BootError, ProtocolError
from prefork.http import NEED_DATA, Limits, Request, Response, ServerConnection
from prefork.metrics.exposition import CONTENT_TYPE
from prefork.metrics.statsd import parse_address

__all__ = ["CLIENT_DEADLINE", "MAX_CLIENTS", "MetricsEndpoint", "open_listener"]

PATH = b"/metrics"
# A scrape is one short line and a few headers (a bearer token among them): a head of at most
# 74 KB, so 16 clients hold little memory even while they send it slowly.
LIMITS = Limits(max_headers=16, max_header_size=4094)


def open_listener(address: str) -> socket.socket:
    """A non-blocking listening socket on ``HOST:PORT``; BootError naming ``metrics_bind``."""
    host, port = parse_address(address)
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        sock.listen(64)
        sock.setblocking(False)
    except (OSError, IndexError) as exc:
        if sock is not None:
            sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BootError(f"metrics_bind: cannot listen on {address}: {reason}") from None
    return sock


class _Scrape:
    """One connection's request, read by the engine."""

    __slots__ = ("conn", "render")

    def __init__(self, render: Callable[[], str], parser: str) -> None:
        self.render = render
        self.conn = ServerConnection(LIMITS, parser=parser, upgrades=frozenset())

    def received(self, data: bytes) -> bytes | None:
        conn = self.conn
        conn.receive_data(data)
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            return conn.error_response(exc)
        if event is NEED_DATA or not isinstance(event, Request):
            return None  # more to come, or the client left before a whole head
        conn.close_after_response()
        path = event.target.split(b"?", 1)[0]
        if path != PATH:
            return _answer(conn, 404, [(b"content-type", b"text/plain; charset=utf-8")],
                           b"only /metrics here\n")
        if event.method not in (b"GET", b"HEAD"):
            return _answer(conn, 405, [(b"allow", b"GET, HEAD")], b"")
        body = self.render().encode("utf-8")
        return _answer(conn, 200, [(b"content-type", CONTENT_TYPE.encode())], body)


def _answer(conn: ServerConnection, status: int, headers: list[tuple[bytes, bytes]],
            body: bytes) -> bytes:
    headers.append((b"content-length", b"%d" % len(body)))
    return conn.send_whole(Response(status, headers), body)


class MetricsEndpoint:
    """Serves ``render()`` on ``listener`` from the arbiter's selector."""

    def __init__(self, listener: socket.socket, render: Callable[[], str],
                 clock: Callable[[], float], log: logging.Logger, parser: str) -> None:
        self.clients = ClientLoop(listener, "metrics", self._open_scrape, log,
                                  close_oldest=True, clock=clock)
        self.render = render
        self.parser = parser

    @property
    def port(self) -> int:
        return int(self.clients.listener.getsockname()[1])

    def start(self, selector: selectors.BaseSelector) -> None:
        self.clients.start(selector)

    def expire(self, now: float) -> None:
        """Close connections past their deadline (silent or slow clients)."""
        self.clients.expire(now)

    def close(self) -> None:
        self.clients.close()

    def abandon(self) -> None:
        """In a freshly forked worker: close the sockets without touching the selector (the
        arbiter's, which the worker closes anyway)."""
        self.clients.abandon()

    def _open_scrape(self, _sock: socket.socket) -> _Scrape:
        return _Scrape(self.render, self.parser)

"""The arbiter's ``/metrics`` responder: a tiny HTTP/1.x server inside the arbiter's loop.

The arbiter forks, so it runs no thread; its selector loop drives this responder like any
other file descriptor. Every socket is non-blocking and every step is bounded, so a scrape can
never stall supervision:

* at most ``MAX_CLIENTS`` connections at once: a new one closes the oldest, so idle
  connections can delay no scrape (a real scrape is answered within milliseconds);
* a request head of at most ``MAX_HEAD`` bytes, which must arrive within ``CLIENT_DEADLINE``
  seconds of the connection (a client that sends nothing is closed by :meth:`expire`, which
  the arbiter calls on each loop turn);
* one response per connection, then close: ``GET /metrics`` (or ``HEAD``; any query string is
  ignored) gets the exposition, another path 404, another method 405; a response the socket
  does not take at once is finished as the socket becomes writable, within the same deadline.

An exception while answering is logged and closes that connection; it never reaches the loop.

Bound with ``SO_REUSEPORT`` (as the reuseport listeners are), so that during a binary upgrade
the new arbiter can bind the same address while the old one still serves it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import selectors
import socket
from collections.abc import Callable

from prefork.errors import BootError
from prefork.metrics.exposition import CONTENT_TYPE
from prefork.metrics.statsd import parse_address

__all__ = ["CLIENT_DEADLINE", "MAX_CLIENTS", "MAX_HEAD", "MetricsEndpoint", "open_listener"]

MAX_CLIENTS = 16
MAX_HEAD = 8192
CLIENT_DEADLINE = 5.0
PATH = b"/metrics"


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


class _Client:
    __slots__ = ("deadline", "head", "out", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.head = b""
        self.out = b""


class MetricsEndpoint:
    """Serves ``render()`` on ``listener`` from the arbiter's ``selector``."""

    def __init__(self, listener: socket.socket, render: Callable[[], str],
                 clock: Callable[[], float], log: logging.Logger) -> None:
        self.listener = listener
        self.render = render
        self.clock = clock
        self.log = log
        self.selector: selectors.BaseSelector | None = None
        self.clients: dict[socket.socket, _Client] = {}

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def start(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        selector.register(self.listener, selectors.EVENT_READ, self._on_accept)

    def _on_accept(self, _key: selectors.SelectorKey) -> None:
        assert self.selector is not None
        for _ in range(MAX_CLIENTS):
            try:
                sock, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: try again on the next wakeup
                self.log.warning("metrics: accept failed: %s", exc)
                return
            if len(self.clients) >= MAX_CLIENTS:
                self._close(next(iter(self.clients.values())))
            sock.setblocking(False)
            client = _Client(sock, self.clock() + CLIENT_DEADLINE)
            self.clients[sock] = client
            self.selector.register(sock, selectors.EVENT_READ,
                                   functools.partial(self._on_event, client))

    def _on_event(self, client: _Client, _key: selectors.SelectorKey) -> None:
        if client.sock not in self.clients:
            return
        try:
            if client.out:
                self._send(client)
            else:
                self._receive(client)
        except Exception:
            self.log.exception("metrics: answering a scrape failed")
            self._close(client)

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        if not data:
            self._close(client)
            return
        client.head += data
        end = client.head.find(b"\r\n\r\n")
        if end < 0:
            end = client.head.find(b"\n\n")
        if end < 0:
            if len(client.head) > MAX_HEAD:
                self._answer(client, b"431 Request Header Fields Too Large", b"", b"")
            return
        self._respond(client, client.head[:end])

    def _respond(self, client: _Client, head: bytes) -> None:
        request_line = head.split(b"\n", 1)[0].strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._answer(client, b"400 Bad Request", b"", b"")
            return
        method, target, _version = parts
        path = target.split(b"?", 1)[0]
        if path != PATH:
            self._answer(client, b"404 Not Found", b"", b"only /metrics here\n")
        elif method not in (b"GET", b"HEAD"):
            self._answer(client, b"405 Method Not Allowed", b"allow: GET, HEAD\r\n", b"")
        else:
            body = self.render().encode("utf-8")
            headers = f"content-type: {CONTENT_TYPE}\r\n".encode()
            self._answer(client, b"200 OK", headers, body, head_only=method == b"HEAD")

    def _answer(self, client: _Client, status: bytes, headers: bytes, body: bytes,
                head_only: bool = False) -> None:
        client.out = (b"HTTP/1.1 " + status + b"\r\n" + headers
                      + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                      + (b"" if head_only else body))
        assert self.selector is not None
        self.selector.modify(client.sock, selectors.EVENT_WRITE,
                             functools.partial(self._on_event, client))
        self._send(client)

    def _send(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        client.out = client.out[sent:]
        if not client.out:
            self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock, None)
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(client.sock)
        client.sock.close()

    def expire(self, now: float) -> None:
        """Close connections past their deadline (silent or slow clients)."""
        for client in [c for c in self.clients.values() if now > c.deadline]:
            self._close(client)

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client)
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.listener)
        self.listener.close()

    def abandon(self) -> None:
        """In a freshly forked worker: close the sockets without touching the selector (the
        arbiter's, which the worker closes anyway)."""
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.listener.close()

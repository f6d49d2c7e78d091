"""The one bounded client loop of the arbiter's small servers: the control socket and ``/metrics``.

The arbiter forks, so it runs no thread; its selector loop drives these servers like any other
file descriptor, and no client may stall supervision. Every socket is non-blocking and every
client is bounded the same way:

* at most ``max_clients`` at once. One more is the server's call: the control socket refuses the
  newcomer (a burst of ``prefork ctl`` calls must not cut off the one being answered), the
  metrics port closes its oldest client (so idle connections can delay no scrape, which is
  answered within milliseconds);
* ``deadline`` seconds from connect until the reply is written: :meth:`ClientLoop.expire`, which
  the arbiter calls on each loop turn, closes a client that sends nothing or reads too slowly;
* one request and one reply per connection, then close. The :class:`Session` made for the client
  is given what arrives and returns the whole reply once it has one; a reply the socket does not
  take at once is finished as the socket becomes writable.

An exception in a session is logged and closes that client; it never reaches the loop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import selectors
import socket
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["CLIENT_DEADLINE", "MAX_CLIENTS", "ClientLoop", "Session"]

MAX_CLIENTS = 16
CLIENT_DEADLINE = 5.0  # seconds from connect to the reply written
READ_SIZE = 4096


class Session(Protocol):
    """One client's request, as the server reads it."""

    def received(self, data: bytes) -> bytes | None:
        """``data`` arrived (``b""``: the client closed its sending side). Returns the whole
        reply once there is one; None waits for more, or, after ``b""``, closes without one."""


class _Client:
    __slots__ = ("answered", "deadline", "outbox", "session", "sock")

    def __init__(self, sock: socket.socket, session: Session, deadline: float) -> None:
        self.sock = sock
        self.session = session
        self.deadline = deadline
        self.outbox = b""
        self.answered = False


class ClientLoop:
    """Accepts on ``listener`` and serves each client a :class:`Session` that ``open_session``
    makes for its socket (None refuses it), from the arbiter's selector."""

    def __init__(self, listener: socket.socket, name: str,
                 open_session: Callable[[socket.socket], Session | None], log: logging.Logger,
                 *, close_oldest: bool, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS, deadline: float = CLIENT_DEADLINE) -> None:
        self.listener = listener
        self.name = name
        self.open_session = open_session
        self.log = log
        self.close_oldest = close_oldest
        self.clock = clock
        self.max_clients = max_clients
        self.deadline = deadline
        self.clients: dict[socket.socket, _Client] = {}
        self.selector: selectors.BaseSelector | None = None

    def start(self, selector: selectors.BaseSelector) -> None:
        """Serve on ``selector``: its callbacks are called with the selector key."""
        self.selector = selector
        selector.register(self.listener, selectors.EVENT_READ, self._on_accept)

    def replace_listener(self, listener: socket.socket) -> None:
        """Accept on ``listener`` from now on; the clients already connected are kept."""
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.listener)
            self.selector.register(listener, selectors.EVENT_READ, self._on_accept)
        self.listener.close()
        self.listener = listener

    def expire(self, now: float) -> None:
        """Close the clients past their deadline (silent or slow ones)."""
        for client in [c for c in self.clients.values() if now > c.deadline]:
            self._drop(client)

    def close(self) -> None:
        """Close every client and the listener."""
        for client in list(self.clients.values()):
            self._drop(client)
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

    def _on_accept(self, _key: selectors.SelectorKey) -> None:
        assert self.selector is not None
        for _ in range(self.max_clients):
            try:
                sock, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the client sees a closed connection
                self.log.warning("%s: accept failed: %s", self.name, exc)
                return
            if len(self.clients) >= self.max_clients:
                if not self.close_oldest:
                    sock.close()
                    continue
                self._drop(next(iter(self.clients.values())))
            sock.setblocking(False)
            try:
                session = self.open_session(sock)
            except OSError:
                session = None
            if session is None:
                sock.close()
                continue
            client = _Client(sock, session, self.clock() + self.deadline)
            self.clients[sock] = client
            self.selector.register(sock, selectors.EVENT_READ,
                                   functools.partial(self._on_client, client))

    def _on_client(self, client: _Client, _key: selectors.SelectorKey) -> None:
        if client.sock not in self.clients:
            return
        try:
            if client.answered:
                self._flush(client)
            else:
                self._receive(client)
        except Exception:  # a client must never take the arbiter down
            self.log.exception("%s: serving a client failed", self.name)
            self._drop(client)

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        reply = client.session.received(data)
        if reply is None:
            if not data:
                self._drop(client)  # connected and left without a request (a liveness probe)
            return
        client.answered = True
        client.outbox = reply
        self._flush(client)
        if client.outbox and self.selector is not None and client.sock in self.clients:
            self.selector.modify(client.sock, selectors.EVENT_WRITE,
                                 functools.partial(self._on_client, client))

    def _flush(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            # Closing with unread input makes the kernel reset the connection, and the client
            # would see ECONNRESET instead of the reply (an over-long request): read it first.
            with contextlib.suppress(OSError):
                for _ in range(4):
                    if not client.sock.recv(65536):
                        break
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if self.clients.pop(client.sock, None) is None:
            return
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(client.sock)
        client.sock.close()

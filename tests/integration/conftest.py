"""Fixtures for one worker's protocol on a real loop and real sockets.

``serve`` starts ``HttpProtocol`` in this process on a loop (uvloop and plain asyncio, the
``loop_kind`` fixture) running in a thread, with the parser of the ``parser`` fixture; the test
talks to it with raw sockets. Any exception that reaches the loop's exception handler fails the
test. ``Client`` reads responses through an h11 client connection, so every response is also
checked for being well-formed HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest
import uvloop

from prefork.asgi.cycle import AsgiServing
from prefork.config import Config
from prefork.http.limits import Limits
from prefork.sockets import tls_context
from prefork.workers.contract import Serving
from prefork.workers.protocol import HttpProtocol
from prefork.workers.serving import ServingState
from prefork.wsgi.cycle import WsgiRunner
from prefork.wsgi.environ import base_environ

PARSERS = ("httptools", "h11")
LOOPS = ("uvloop", "asyncio")


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class LoopServer:
    """``HttpProtocol`` served by a loop in a thread; ``port`` (or ``path``) once started."""

    def __init__(self, loop_kind: str, app: Any, settings: dict[str, Any],
                 lifespan_state: dict[str, Any] | None = None, unix_path: str | None = None,
                 wsgi: bool = False):
        self.loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self.config = Config.from_mapping({"bind": ["127.0.0.1:0"], **settings})
        self.app = app
        self.lifespan_state = lifespan_state or {}
        self.unix_path = unix_path
        self.wsgi = wsgi  # served inline on the loop thread, as a worker with --threads 1
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.state: ServingState | None = None
        self.server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        self.thread.start()
        self.server = self.call(self._start())
        if self.unix_path is None:
            self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self) -> asyncio.AbstractServer:
        serving: Serving
        if self.wsgi:
            serving = WsgiRunner(base_environ(root_path="", errors=None, multithread=False,
                                              multiprocess=False, file_wrapper=None),
                                 None, Limits().max_buffer)
        else:
            serving = AsgiServing(self.config, self.lifespan_state, self.loop)
        state = ServingState(self.config, self.app, serving, on_request_done=lambda _n: None)
        self.state = state
        if self.unix_path is not None:
            return await self.loop.create_unix_server(lambda: HttpProtocol(state),
                                                      self.unix_path)
        return await self.loop.create_server(lambda: HttpProtocol(state), "127.0.0.1", 0,
                                             ssl=tls_context(self.config))

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _stop(self) -> None:
        assert self.server is not None and self.state is not None
        self.server.close()
        for protocol in list(self.state.connections):
            protocol.abort()
        await asyncio.sleep(0)
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
def serve(loop_kind: str, parser: str) -> Iterator[Callable[..., LoopServer]]:
    """``serve(app, **settings)`` starts a LoopServer with this test's loop and parser."""
    servers: list[LoopServer] = []

    def start(app: Any, *, lifespan_state: dict[str, Any] | None = None,
              unix_path: str | None = None, wsgi: bool = False, **settings: Any) -> LoopServer:
        settings.setdefault("http", parser)
        server = LoopServer(loop_kind, app, settings, lifespan_state, unix_path, wsgi)
        servers.append(server)
        server.start()
        return server

    yield start
    errors = []
    for server in servers:
        server.stop()
        errors += server.errors
    assert not errors, f"unhandled exceptions in the loop: {errors}"


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    informational: list[int] = field(default_factory=list)
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Client:
    """A raw socket plus an h11 client connection that parses (and checks) the responses.

    Requests are written as raw bytes with :meth:`send`; :meth:`response` tells h11 which
    method was asked (HEAD changes the framing) and reads the next response.
    """

    def __init__(self, port: int = 0, *, path: str | None = None, timeout: float = 5.0,
                 tls: ssl.SSLContext | None = None):
        """``tls``: speak TLS with this client context (to a server given ``certfile``)."""
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            # no Nagle: tests write requests in pieces and must not wait for delayed ACKs
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.h11 = h11.Connection(h11.CLIENT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str = "GET", path: str = "/", body: bytes = b"",
                headers: list[tuple[str, str]] | None = None) -> Reply:
        fields = [("Host", "test"), *(headers or [])]
        if body:
            fields.append(("Content-Length", str(len(body))))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
        self.send(head.encode("latin-1") + b"\r\n" + body)
        return self.response(method)

    def response(self, method: str = "GET") -> Reply:
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "test")]))
        conn.send(h11.EndOfMessage())
        informational: list[int] = []
        reply: Reply | None = None
        body: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.SEND_RESPONSE:
                    raise ConnectionError("connection closed before a response")
                continue
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                reply = Reply(event.status_code, dict(event.headers), b"",
                              informational=informational, raw_headers=list(event.headers))
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert reply is not None
                reply.body = b"".join(body)
                reply.trailers = dict(event.headers)
                return reply
            else:
                raise ConnectionError(f"unexpected {event!r}")

    def recv_all(self) -> bytes:
        """Everything until the server closes."""
        chunks = []
        while data := self.sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)

    def is_closed(self, timeout: float = 3.0) -> bool:
        """True once the server closed (EOF or reset) within ``timeout``; False if it did not."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


@pytest.fixture
def client_factory() -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(port: int = 0, **kwargs: Any) -> Client:
        client = Client(port, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()

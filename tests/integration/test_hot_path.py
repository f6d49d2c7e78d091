"""The shortcuts of the per-request hot path keep the semantics of the long way round.

* A WSGI request answered inline without a task leaves nothing in flight, so
  ``--limit-concurrency`` does not fill up with finished requests.
* A request leaves no reference cycle behind (ASGI and WSGI): its objects go when it ends,
  not at the garbage collector's next pass, which would pause the worker under load.
* A one-piece body of ``JOIN_LIMIT`` bytes or more is written beside its head, not joined to
  it: the same bytes on the wire, with and without a Content-Length, for HEAD, and a body
  that breaks its Content-Length still cuts the connection. ASGI and WSGI, both parsers, both
  loops.
* Small answers are held until the loop's pass ends, whoever writes them (the read callback or
  a task); pipelined answers (held, written apart, then a close) still reach the client whole
  and in order.
* An iterable that is not one piece is walked inside ``data_received`` until it takes too long;
  the rest follows from a task, and the body arrives whole, its ``close()`` called once.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from prefork.asgi.cycle import AsgiServing, HttpCycle
from prefork.config import Config
from prefork.http.connection import JOIN_LIMIT
from prefork.http.events import Request
from prefork.testing import http_request, parse_response, running_server
from prefork.workers.protocol import HttpProtocol
from prefork.workers.serving import ServingState
from prefork.wsgi.cycle import WsgiCycle

pytestmark = pytest.mark.timeout(30)


# -- WSGI inline accounting --------------------------------------------------------------------


def hello_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    # A plain list, no wsgiref.validate wrapper: the shape that is answered without a task.
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_inline_wsgi_requests_leave_nothing_in_flight(parser: str) -> None:
    # A GET answered inline (no task) must release its in-flight slot like any other request:
    # with one slot, the second request would otherwise get 503.
    with running_server(hello_wsgi, workers=1, threads=1, limit_concurrency=1,
                        http=parser) as server:
        for _ in range(3):
            assert http_request(server.port, "/hello")[0] == 200
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            for _ in range(3):  # keep-alive: one connection, one request after another
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, body = read_response(sock)
                assert status == 200 and body == b"Hello, world!", (status, headers, body)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    status, headers, body = parse_response(data)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        body += chunk
    return status, headers, body


def serve_wsgi(serve: Any, app: Callable[..., Any]) -> Any:
    """``serve`` for a WSGI app, run inline on the loop thread as a worker with --threads 1."""
    return serve(app, wsgi=True)


# -- no reference cycles per request ------------------------------------------------------------


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_requests_leave_no_reference_cycles(serve: Any, client_factory: Any,
                                            interface: str) -> None:
    async def hello_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"13")]})
        await send({"type": "http.response.body", "body": b"Hello, world!"})

    server = serve(hello_asgi) if interface == "asgi" else serve_wsgi(serve, hello_wsgi)
    client = client_factory(server.port)
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector frees is kept in gc.garbage instead
    try:
        for _ in range(20):
            assert client.request().body == b"Hello, world!"
        gc.collect()
        left = [type(item).__name__ for item in gc.garbage
                if isinstance(item, HttpCycle | WsgiCycle | Request)]
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
    assert left == []


# -- large bodies: head and body written apart -------------------------------------------------

LARGE = bytes(range(256)) * (4 * JOIN_LIMIT // 256)  # 64 KiB, every byte value


def large_asgi(scope: dict[str, Any], receive: Any, send: Any) -> Any:
    async def app() -> None:
        query = scope["query_string"]
        body = LARGE[:-1] if query == b"short" else LARGE
        headers = [(b"content-type", b"application/octet-stream")]
        if query != b"chunked":
            headers.append((b"content-length", b"%d" % len(LARGE)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    return app()


def large_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [LARGE]


def test_large_asgi_body_is_written_apart(serve: Any, client_factory: Any) -> None:
    server = serve(large_asgi)
    client = client_factory(server.port)
    for _ in range(2):  # and the connection is reused after it
        reply = client.request()
        assert reply.status == 200 and reply.body == LARGE
        assert reply.headers[b"content-length"] == b"%d" % len(LARGE)
    reply = client.request("GET", "/?chunked")
    assert reply.body == LARGE and reply.headers[b"transfer-encoding"] == b"chunked"
    reply = client.request("HEAD")
    assert reply.body == b"" and reply.headers[b"content-length"] == b"%d" % len(LARGE)
    assert client.request().body == LARGE


def test_large_asgi_body_shorter_than_its_length_cuts_the_connection(
        serve: Any, client_factory: Any) -> None:
    server = serve(large_asgi)
    client = client_factory(server.port)
    client.send(b"GET /?short HTTP/1.1\r\nHost: test\r\n\r\n")
    data = client.recv_all()
    assert not data  # nothing of the broken response went out
    server.errors.clear()  # the application's error was logged, not raised into the loop


def test_large_wsgi_body_is_written_apart(serve: Any, client_factory: Any) -> None:
    server = serve_wsgi(serve, large_wsgi)
    client = client_factory(server.port)
    for _ in range(2):
        reply = client.request()
        assert reply.status == 200 and reply.body == LARGE
        assert reply.headers[b"content-length"] == b"%d" % len(LARGE)
    reply = client.request("HEAD")
    assert reply.body == b""
    assert client.request().body == LARGE


# -- writes held while reading -----------------------------------------------------------------


def sized_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [LARGE if environ["PATH_INFO"] == "/large" else environ["PATH_INFO"].encode()]


def test_held_answers_keep_their_order(serve: Any, client_factory: Any) -> None:
    # Pipelined requests in one segment are all answered inside one data_received: the small
    # answers are held until the loop's pass ends, the large one is written apart, and the
    # last closes the connection. On the wire they must come in request order, all of them.
    server = serve_wsgi(serve, sized_wsgi)
    client = client_factory(server.port)
    client.send(b"GET /first HTTP/1.1\r\nHost: test\r\n\r\n"
                b"GET /large HTTP/1.1\r\nHost: test\r\n\r\n"
                b"GET /second HTTP/1.1\r\nHost: test\r\n\r\n"
                b"GET /last HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    assert client.response().body == b"/first"
    assert client.response().body == LARGE
    assert client.response().body == b"/second"
    last = client.response()
    assert last.body == b"/last" and last.headers[b"connection"] == b"close"
    assert client.recv_all() == b""


class ManyPieces:
    """A response iterable of many small pieces that takes a while: it crosses the hold limit
    many times and the inline walk's YIELD_INTERVAL, so its rest moves to a task."""

    closed = 0

    def __iter__(self) -> Any:
        for number in range(20_000):
            if number % 1000 == 0:
                time.sleep(0.002)
            yield b"%05d," % number

    def close(self) -> None:
        ManyPieces.closed += 1


def many_pieces(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ManyPieces()


def test_an_iterable_walked_inline_then_in_a_task_arrives_whole(serve: Any,
                                                                client_factory: Any) -> None:
    server = serve_wsgi(serve, many_pieces)
    client = client_factory(server.port)
    ManyPieces.closed = 0
    expected = b"".join(b"%05d," % number for number in range(20_000))
    for _ in range(2):  # and the connection is reused after it
        reply = client.request()
        assert reply.status == 200 and reply.body == expected
    # close() follows the last write on the server's thread: the client may read first
    deadline = time.monotonic() + 5
    while ManyPieces.closed < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ManyPieces.closed == 2


def test_a_failing_held_write_does_not_hold_back_the_others(caplog: Any) -> None:
    # The held answers of one loop pass are released together: a transport that raises on
    # write (closed under us) must not leave the next connection's answer unsent.
    class Transport:
        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.written: list[bytes] = []

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            if self.fails:
                raise RuntimeError("the handler is closed")
            self.written.append(data)

    async def hold_two() -> Transport:
        config = Config.from_mapping({})
        serving = AsgiServing(config, {}, asyncio.get_running_loop())
        state = ServingState(config, None, serving, lambda _count: None)
        broken, healthy = Transport(True), Transport(False)
        for transport in (broken, healthy):
            protocol = HttpProtocol(state)
            protocol.connection_made(transport)  # type: ignore[arg-type]  # a stand-in
            protocol.write(b"an answer")  # small: held until the loop's pass ends
        await asyncio.sleep(0)  # the pass ends; the release runs
        return healthy

    healthy = asyncio.run(hold_two())
    assert healthy.written == [b"an answer"]
    assert "writing a held answer" in caplog.text

"""Microbenchmark of the Python overhead per request/response cycle, without sockets.

Run: ``python bench/http_engine.py``. Engine rows: receive a typical browser-like GET with six
header fields, pull its events, send a 200 response with two fields and a 13-byte body, start the
next cycle; this is the cost the engine adds on top of the event loop.

Protocol rows: the whole worker path for one request on a uvloop loop with a fake transport:
``data_received`` -> engine -> ASGI scope and cycle -> app task (``examples/hello.py``'s shape:
two ``send`` calls) or inline WSGI call -> ``transport.write``, then the next request on the same
connection. Each request is fed from a plain loop callback, as a socket's read callback feeds a
real server (never from inside a task, where a task could not start eagerly), and the next one
once the response is written. The rows include the loop iteration an app task waits for; the
reference rows are a no-op task per request and the driver alone (one callback per request).
The 64 KB rows answer with ``bench/apps/large_body.py``'s body; the "a connection each" row
makes, serves and loses one connection per request (``Connection: close``), so it adds the
protocol's set-up and tear-down.

Timings move with whatever else runs on the machine: take the best of several runs, and compare
two versions in the same minute (or count instructions under ``valgrind --tool=cachegrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

import h11
import httptools

from prefork.config import Config
from prefork.http import Data, EndOfMessage, Response, ServerConnection

REQUEST = (
    b"GET /plaintext HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
RESPONSE = Response(200, [(b"content-type", b"text/plain"), (b"content-length", b"13")])
BODY = Data(b"Hello, world!")
END = EndOfMessage()


def cycles(parser: str, n: int) -> float:
    """Seconds per cycle over ``n`` cycles on one keep-alive connection."""
    conn = ServerConnection(parser=parser)
    receive, next_event, send = conn.receive_data, conn.next_event, conn.send
    start = time.perf_counter()
    for _ in range(n):
        receive(REQUEST)
        next_event()  # Request
        next_event()  # EndOfMessage
        send(RESPONSE)
        send(BODY)
        send(END)
        conn.start_next_cycle()
    return (time.perf_counter() - start) / n


class _Ignore:
    """httptools callbacks that keep nothing: the floor any httptools-based server pays."""

    def on_url(self, url: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_headers_complete(self) -> None:
        pass

    def on_message_complete(self) -> None:
        pass


def floor(n: int) -> float:
    """Reference: llhttp with empty callbacks plus one joined head; no validation, no state."""
    parser = httptools.HttpRequestParser(_Ignore())
    start = time.perf_counter()
    for _ in range(n):
        parser.feed_data(REQUEST)
        b"".join([b"HTTP/1.1 200 OK\r\n", b"content-type: text/plain\r\n", b"\r\n"])
    return (time.perf_counter() - start) / n


def h11_alone(n: int) -> float:
    """Reference: the same cycle through a bare h11.Connection (no prefork code at all)."""
    conn = h11.Connection(h11.SERVER)
    response = h11.Response(status_code=200, headers=RESPONSE.headers)
    body, end = h11.Data(data=BODY.data), h11.EndOfMessage()
    start = time.perf_counter()
    for _ in range(n):
        conn.receive_data(REQUEST)
        conn.next_event()
        conn.next_event()
        conn.send(response)
        conn.send(body)
        conn.send(end)
        conn.start_next_cycle()
    return (time.perf_counter() - start) / n


class FakeTransport:
    """Just enough of a transport for HttpProtocol: counts what is written, and calls
    ``on_write`` (once) after the next write, as the next read would come after a response."""

    def __init__(self) -> None:
        self.writes = 0
        self.closed = False
        self.on_write: Callable[[], None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def write(self, data: bytes) -> None:
        self.writes += 1
        callback = self.on_write
        if callback is not None:
            self.on_write = None
            callback()

    def writelines(self, pieces: Iterable[bytes]) -> None:
        self.write(b"")

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


HELLO_BODY = b"Hello, world!"
LARGE_BODY = b"x" * 65536  # bench/apps/large_body.py's


def asgi_app(body: bytes) -> Callable[..., Any]:
    """``examples/hello.py``'s shape: a head with a Content-Length, then the body."""
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]}
    message = {"type": "http.response.body", "body": body}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start)
        await send(message)

    return app


def wsgi_app(body: bytes) -> Callable[..., Any]:
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", headers)
        return [body]

    return app


def _drive(loop: asyncio.AbstractEventLoop, n: int, transport: FakeTransport,
           data_received: Callable[[bytes], None]) -> float:
    """Seconds per request: each request is fed from a plain loop callback, as a socket's read
    callback would feed it (never from inside a task), and the next one after the response."""
    finished: asyncio.Future[float] = loop.create_future()
    call_soon = loop.call_soon
    remaining = n
    start = 0.0

    def feed() -> None:
        nonlocal remaining
        if remaining == 0:
            finished.set_result(time.perf_counter() - start)
            return
        remaining -= 1
        before = transport.writes
        data_received(REQUEST)
        if transport.writes == before:
            transport.on_write = lambda: call_soon(feed)
        else:
            call_soon(feed)

    start = time.perf_counter()
    call_soon(feed)
    return loop.run_until_complete(finished) / n


def protocol_cycles(n: int, interface: str = "asgi", parser: str = "httptools",
                    body: bytes = HELLO_BODY) -> float:
    """Seconds per request through HttpProtocol on one keep-alive connection."""
    import uvloop

    from prefork.asgi.cycle import AsgiServing
    from prefork.http.limits import Limits
    from prefork.workers.contract import Serving
    from prefork.workers.protocol import HttpProtocol
    from prefork.workers.serving import ServingState

    loop = uvloop.new_event_loop()
    config = Config.from_mapping({"http": parser})

    async def connect() -> tuple[HttpProtocol, FakeTransport]:
        # The protocol and the serving state are made on the running loop, as a worker does.
        serving: Serving
        if interface == "wsgi":
            from prefork.wsgi.cycle import WsgiRunner
            from prefork.wsgi.environ import base_environ

            app = wsgi_app(body)
            serving = WsgiRunner(base_environ(root_path="", errors=None, multithread=False,
                                              multiprocess=False, file_wrapper=None),
                                 None, Limits().max_buffer)
        else:
            app = asgi_app(body)
            serving = AsgiServing(config, {}, asyncio.get_running_loop())
        state = ServingState(config, app, serving, lambda count: None)
        protocol = HttpProtocol(state)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport

    try:
        protocol, transport = loop.run_until_complete(connect())
        per_request = _drive(loop, n, transport, protocol.data_received)
        assert not transport.closed
        protocol.connection_lost(None)
        return per_request
    finally:
        loop.close()


def connection_cycles(n: int) -> float:
    """Seconds per request when each request comes on a new connection (``Connection: close``):
    the protocol's set-up and tear-down around one ASGI hello request."""
    import uvloop

    from prefork.asgi.cycle import AsgiServing
    from prefork.workers.protocol import HttpProtocol
    from prefork.workers.serving import ServingState

    loop = uvloop.new_event_loop()
    config = Config.from_mapping({})
    request = REQUEST.replace(b"Connection: keep-alive", b"Connection: close")

    async def serve() -> float:
        serving = AsgiServing(config, {}, asyncio.get_running_loop())
        state = ServingState(config, asgi_app(HELLO_BODY), serving, lambda count: None)
        start = time.perf_counter()
        for _ in range(n):
            protocol = HttpProtocol(state)
            transport = FakeTransport()
            written = loop.create_future()
            transport.on_write = functools.partial(written.set_result, None)
            protocol.connection_made(transport)  # type: ignore[arg-type]
            protocol.data_received(request)
            await written
            protocol.connection_lost(None)
        return (time.perf_counter() - start) / n

    try:
        return loop.run_until_complete(serve())
    finally:
        loop.close()


def loop_floor(n: int) -> float:
    """Reference: one no-op task per request on uvloop, driven the same way."""
    import uvloop

    loop = uvloop.new_event_loop()
    transport = FakeTransport()

    async def noop() -> None:
        transport.write(b"")

    def data_received(data: bytes) -> None:
        loop.create_task(noop())

    try:
        return _drive(loop, n, transport, data_received)
    finally:
        loop.close()


def callback_floor(n: int) -> float:
    """Reference: the driver alone (one loop callback per request, answered at once)."""
    import uvloop

    loop = uvloop.new_event_loop()
    transport = FakeTransport()

    def data_received(data: bytes) -> None:
        transport.write(b"")

    try:
        return _drive(loop, n, transport, data_received)
    finally:
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="cycles per run")
    ap.add_argument("--runs", type=int, default=5, help="runs per parser; the best is shown")
    args = ap.parse_args()
    small = max(args.n // 10, 1)
    rows = [
        ("prefork, httptools", lambda: cycles("httptools", args.n)),
        ("prefork, h11", lambda: cycles("h11", small)),
        ("reference: llhttp, empty callbacks", lambda: floor(args.n)),
        ("reference: bare h11.Connection", lambda: h11_alone(small)),
        ("protocol, ASGI hello, httptools", lambda: protocol_cycles(args.n)),
        ("protocol, WSGI hello, httptools", lambda: protocol_cycles(args.n, "wsgi")),
        ("protocol, ASGI hello, a connection each", lambda: connection_cycles(args.n)),
        ("protocol, ASGI 64 KB body, httptools",
         lambda: protocol_cycles(args.n, body=LARGE_BODY)),
        ("protocol, WSGI 64 KB body, httptools",
         lambda: protocol_cycles(args.n, "wsgi", body=LARGE_BODY)),
        ("reference: one no-op task per request", lambda: loop_floor(args.n)),
        ("reference: one loop callback per request", lambda: callback_floor(args.n)),
    ]
    for label, run in rows:
        best = min(run() for _ in range(args.runs))
        print(f"{label:>42}: {best * 1e6:7.2f} µs per request/response cycle")


if __name__ == "__main__":
    main()

"""A connection's life: early responses, EOF and disconnects, 100-continue, timeouts and read
flow control. Both parsers, uvloop and plain asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import time
from typing import Any

import pytest

from prefork.errors import ClientDisconnected
from tests.integration import apps

pytestmark = pytest.mark.timeout(20)


class Recorder:
    """An app wrapper that records what its ``receive`` returned and how ``send`` ended."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self.calls = 0
        self.messages: list[dict[str, Any]] = []
        self.outcome: str | None = None
        self.done = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1

        async def recording_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            self.messages.append(message)
            return message

        try:
            await self.app(scope, recording_receive, send)
            self.outcome = "returned"
        except ClientDisconnected:
            self.outcome = "ClientDisconnected"
            raise
        finally:
            self.done.set()


async def wait_for_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, waits for http.disconnect, then tries to answer anyway."""
    while (await receive())["type"] != "http.disconnect":
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})


# -- early responses ---------------------------------------------------------------------------

def test_early_response_keeps_connection_alive(serve: Any, client_factory: Any) -> None:
    server = serve(apps.not_found)
    client = client_factory(server.port)
    body = b"b" * 5000
    reply = client.request("POST", "/missing", body=body)
    assert reply.status == 404
    assert b"connection" not in reply.headers
    assert client.request("GET", "/").status == 404  # the same connection, in sync


def test_early_response_then_client_sends_body(serve: Any, client_factory: Any) -> None:
    server = serve(apps.not_found)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
    assert client.response("POST").status == 404  # answered before the body came
    client.send(b"q" * 20000)
    assert client.request("GET", "/").status == 404


def test_early_response_with_huge_body_closes_after_response(serve: Any,
                                                             client_factory: Any) -> None:
    server = serve(apps.not_found)
    client = client_factory(server.port)
    body = b"h" * (4 * 1024 * 1024)  # far above max_buffer: not worth reading to reuse
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    reply = client.response("POST")
    assert reply.status == 404
    _send_ignoring_errors(client.sock, body)
    assert client.is_closed()


def test_large_post_answered_early_is_readable(serve: Any, client_factory: Any) -> None:
    """The client writes its whole body before reading: the lingering close keeps the 404
    from being destroyed by a reset."""
    server = serve(apps.not_found)
    client = client_factory(server.port)
    body = b"p" * (1024 * 1024)
    sender = threading.Thread(target=_send_ignoring_errors, args=(
        client.sock, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)))
    sender.start()
    try:
        assert client.response("POST").status == 404
    finally:
        sender.join(10)


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


# -- EOF and disconnects -----------------------------------------------------------------------

def test_half_close_after_complete_request_gets_response(serve: Any, client_factory: Any) -> None:
    server = serve(apps.echo)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping")
    client.sock.shutdown(socket.SHUT_WR)
    data = client.recv_all()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"ping")  # and then the server closed (recv_all returned)


def test_incomplete_head_at_eof_is_dropped(serve: Any, client_factory: Any) -> None:
    recorder = Recorder(apps.hello)
    server = serve(recorder)
    client = client_factory(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.recv_all() == b""
    assert recorder.calls == 0


def test_incomplete_body_at_eof_disconnects_app(serve: Any, client_factory: Any) -> None:
    recorder = Recorder(wait_for_disconnect)
    server = serve(recorder)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.recv_all() == b""
    assert recorder.done.wait(5)
    types = [message["type"] for message in recorder.messages]
    assert types[-1] == "http.disconnect"
    assert recorder.outcome == "ClientDisconnected"


async def long_poll(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, then waits for http.disconnect and stops without answering."""
    while (await receive())["type"] != "http.disconnect":
        pass


def test_client_gone_while_app_waits(serve: Any, client_factory: Any, caplog: Any) -> None:
    recorder = Recorder(long_poll)
    server = serve(recorder)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    deadline = time.monotonic() + 5
    while not recorder.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.messages[0] == {"type": "http.request", "body": b"hi", "more_body": False}
    assert not recorder.done.is_set()  # http.disconnect only once the client left
    client.close()
    assert recorder.done.wait(5)
    assert recorder.messages[-1] == {"type": "http.disconnect"}
    assert recorder.outcome == "returned"
    assert not [r for r in caplog.records if r.levelno >= 30]


def test_disconnect_after_response_complete(serve: Any, client_factory: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        seen.append(await receive())
        try:
            await send({"type": "http.response.body", "body": b"more"})
        except RuntimeError as exc:
            seen.append({"error": str(exc)})

    server = serve(app)
    client = client_factory(server.port)
    assert client.request().body == b"ok"
    assert client.request().body == b"ok"
    assert seen[0] == {"type": "http.disconnect"}
    assert "already complete" in seen[1]["error"]


# -- 100-continue ------------------------------------------------------------------------------

def test_100_continue_sent_when_app_reads(serve: Any, client_factory: Any) -> None:
    server = serve(apps.echo)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n")
    assert client.sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
    client.send(b"hello")
    client.h11.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n")
    reply = client.response("POST")
    assert (reply.status, reply.body) == (200, b"hello")
    assert client.request().status == 200


def test_no_100_continue_when_app_answers_without_reading(serve: Any,
                                                          client_factory: Any) -> None:
    server = serve(apps.not_found)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n")
    reply = client.response("POST")
    assert reply.status == 404
    assert reply.informational == []
    assert reply.headers[b"connection"] == b"close"  # the body may never come
    assert client.is_closed()


# -- timeouts ----------------------------------------------------------------------------------

def test_keep_alive_timeout_closes_idle_connection(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello, keepalive=0.2)
    client = client_factory(server.port)
    assert client.request().status == 200
    started = time.monotonic()
    assert client.is_closed(timeout=3)
    assert time.monotonic() - started < 2


def test_deadline_sweep_runs_only_while_connections_are_open(serve: Any,
                                                             client_factory: Any) -> None:
    server = serve(apps.hello, keepalive=0.2)
    assert server.state.sweep_interval == pytest.approx(0.05)  # a quarter of the shortest
    assert not server.state.sweeping
    client = client_factory(server.port)
    assert client.request().status == 200
    assert server.state.sweeping
    assert client.is_closed(timeout=3)
    deadline = time.monotonic() + 3
    while server.state.sweeping and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not server.state.sweeping  # an idle worker is not woken


def test_slowloris_head_gets_408(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello, headers_timeout=0.3, keepalive=5)
    client = client_factory(server.port)
    started = time.monotonic()
    for piece in (b"GET / HT", b"TP/1.1\r\n", b"Host: x\r\n"):
        client.send(piece)
        time.sleep(0.05)
    data = client.recv_all()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.25 < time.monotonic() - started < 3


def test_stalled_body_gets_408(serve: Any, client_factory: Any) -> None:
    recorder = Recorder(apps.echo)
    server = serve(recorder, body_timeout=0.3)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    data = client.recv_all()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert recorder.done.wait(5)
    assert recorder.messages[-1] == {"type": "http.disconnect"}


def test_stalled_body_after_response_started_closes(serve: Any, client_factory: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    server = serve(app, body_timeout=0.3)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    data = client.recv_all()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert not data.endswith(b"0\r\n\r\n")  # cut, not completed


def test_waiting_for_100_continue_is_not_a_stall(serve: Any, client_factory: Any) -> None:
    async def slow_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.5)  # longer than body_timeout before asking for the body
        await apps.echo(scope, receive, send)

    server = serve(slow_reader, body_timeout=0.2)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                b"Expect: 100-continue\r\n\r\n")
    assert client.sock.recv(100).startswith(b"HTTP/1.1 100 ")
    client.h11.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n")
    client.send(b"ok")
    assert client.response("POST").body == b"ok"


# -- read flow control -------------------------------------------------------------------------

def test_reading_pauses_until_app_consumes(serve: Any, client_factory: Any) -> None:
    go = asyncio.Event()

    async def lazy_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await go.wait()
        await apps.echo(scope, receive, send)

    server = serve(lazy_reader)
    client = client_factory(server.port)
    body = b"f" * (8 * 1024 * 1024)
    sender = threading.Thread(target=_send_ignoring_errors, args=(
        client.sock, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)))
    sender.start()
    try:
        deadline = time.monotonic() + 5
        while not server.call(_paused(server)) and time.monotonic() < deadline:
            time.sleep(0.01)
        buffered = server.call(_paused(server))
        assert buffered, "reading was not paused"
        assert buffered < 2 * 1024 * 1024  # max_buffer plus at most a few reads
        server.loop.call_soon_threadsafe(go.set)
        reply = client.response("POST")
        assert len(reply.body) == len(body)
    finally:
        sender.join(10)


async def _paused(server: Any) -> int:
    for protocol in server.state.connections:
        if protocol.reading_paused and protocol.cycle is not None:
            return int(protocol.cycle.body_size + protocol.conn.buffered_bytes)
    return 0


# -- freeing a lost connection -------------------------------------------------------------------

def _serve_closing_requests(server: Any, client_factory: Any, count: int) -> None:
    for _ in range(count):
        client = client_factory(server.port)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv_all().startswith(b"HTTP/1.1 200 ")
    deadline = time.monotonic() + 5
    while server.state.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.state.connections


def test_lost_connections_are_freed_without_the_cycle_collector(serve: Any,
                                                                client_factory: Any) -> None:
    """The engine's parser and connection refer to each other; a lost connection breaks that,
    so its objects go at once and the cycle collector finds none of them."""
    server = serve(apps.hello)
    _serve_closing_requests(server, client_factory, 2)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds stays in gc.garbage
    try:
        _serve_closing_requests(server, client_factory, 5)
        gc.collect()
        left = sorted({type(o).__name__ for o in gc.garbage} & {
            "HttpProtocol", "ServerConnection", "HttptoolsTokenizer", "H11Tokenizer"})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


# -- a large one-piece body --------------------------------------------------------------------

# 16 MB, each byte where it belongs: more than the kernel's buffers take, so most of it waits
# for the client to read
LARGE_BODY = bytes(range(256)) * (64 * 1024)


async def large_one_piece(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(LARGE_BODY))]})
    await send({"type": "http.response.body", "body": LARGE_BODY})


@pytest.mark.parametrize("reader", ["fast", "slow"])
def test_a_large_one_piece_body_arrives_whole_before_the_next_answer(
        serve: Any, client_factory: Any, reader: str) -> None:
    """The body goes out in slices as the client reads; the pipelined request behind it is
    answered only after its last byte, and the connection is reused."""
    server = serve(large_one_piece)
    client = client_factory(server.port)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    client.send(request * 2)
    if reader == "slow":
        time.sleep(0.3)  # the transport's buffer fills: the rest waits for the client
    first, second = client.response(), client.response()
    assert first.body == LARGE_BODY and second.body == LARGE_BODY
    assert client.request("GET", "/").body == LARGE_BODY


async def _open_connections(server: Any) -> int:
    return len(server.state.connections)


@pytest.mark.parametrize("app", ["one_piece", "streamed"])
def test_a_client_that_reads_nothing_is_aborted_after_the_send_timeout(
        serve: Any, client_factory: Any, app: str) -> None:
    server = serve(large_one_piece if app == "one_piece" else apps.big_download,
                   send_timeout=0.5)
    client = client_factory(server.port)
    client.send(b"GET /?16 HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    while not server.call(_open_connections(server)) and time.monotonic() < deadline:
        time.sleep(0.01)  # accepted, then
    while server.call(_open_connections(server)) and time.monotonic() < deadline:
        time.sleep(0.05)  # aborted
    assert server.call(_open_connections(server)) == 0
    assert client.is_closed()

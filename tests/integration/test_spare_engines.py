"""A closed connection's engine serves a later connection only when that is safe.

A connection that ends between two messages leaves its engine (tokenizer and llhttp parser
included) to the worker's next connections (``ServingState.spare_engines``); one cut inside a
request, or one whose client sent more after a ``Connection: close`` request, does not. The
next connection's requests, whatever they are (a body, HTTP/1.0, several kept alive), are read
as by a new engine, and the protocol of the closed connection is left an engine that refuses to
send, so an app still holding its cycle cannot write into another client's response. The h11
backend keeps no engine (starting h11 over costs what a new one does).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from prefork.errors import LocalProtocolError
from prefork.http.events import Data
from tests.integration.apps import echo
from tests.integration.conftest import Client, LoopServer

pytestmark = pytest.mark.timeout(20)

CLOSE_POST = (b"POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
              b"Content-Length: 5\r\n\r\nfirst")


def _settle(server: LoopServer) -> int:
    """The worker's spare engines once every connection is gone."""
    state = server.state
    assert state is not None
    deadline = time.monotonic() + 5
    while state.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # connection_lost runs a pass after the close
    return len(state.spare_engines)


def _closed_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_the_engine_of_a_closed_connection_reads_the_next_ones_requests(
        serve: Callable[..., LoopServer], client_factory: Callable[..., Client],
        parser: str) -> None:
    server = serve(echo)
    answer = _closed_exchange(server.port, CLOSE_POST)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nfirst")
    assert _settle(server) == (1 if parser == "httptools" else 0)
    state = server.state
    assert state is not None
    kept = list(state.spare_engines)
    # HTTP/1.0, then a kept connection with two requests: each read afresh
    answer = _closed_exchange(server.port, b"POST /x HTTP/1.0\r\nContent-Length: 6\r\n\r\nsecond")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nsecond")
    assert b"x-method: POST" in answer
    client = client_factory(server.port)
    assert client.request("PUT", "/", b"third").body == b"third"
    reply = client.request("GET", "/")
    assert (reply.status, reply.body, reply.headers[b"x-method"]) == (200, b"", b"GET")
    client.close()  # an idle kept connection closed by its client: between two messages too
    assert _settle(server) == len(kept)
    assert all(engine in state.spare_engines for engine in kept)


@pytest.mark.parametrize("cut", [
    b"GET / HTTP/1.1\r\nHost: te",  # inside the head
    b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc",  # inside the body
])
def test_a_connection_cut_inside_a_request_keeps_no_engine(
        serve: Callable[..., LoopServer], cut: bytes) -> None:
    server = serve(echo)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(cut)
        time.sleep(0.1)
    assert _settle(server) == 0
    # and a request after it is answered by a new engine
    answer = _closed_exchange(server.port, CLOSE_POST)
    assert answer.endswith(b"\r\n\r\nfirst")


def test_bytes_after_a_close_request_are_not_read_and_keep_no_engine(
        serve: Callable[..., LoopServer], parser: str) -> None:
    server = serve(echo)
    after = b"POST /two HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nnot"
    answer = _closed_exchange(server.port, CLOSE_POST + after)
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.endswith(b"\r\n\r\nfirst")
    assert _settle(server) == 0
    answer = _closed_exchange(server.port, CLOSE_POST)
    assert answer.endswith(b"\r\n\r\nfirst")
    assert _settle(server) == (1 if parser == "httptools" else 0)


def test_a_cycle_kept_past_its_connection_cannot_write_through_a_reused_engine(
        serve: Callable[..., LoopServer], parser: str) -> None:
    cycles: list[Any] = []

    async def keeps_its_send(scope: dict[str, Any], receive: Any, send: Any) -> None:
        cycles.append(send)
        await echo(scope, receive, send)

    server = serve(keeps_its_send)
    _closed_exchange(server.port, CLOSE_POST)
    _settle(server)
    state = server.state
    assert state is not None
    first = cycles[0].protocol
    if parser == "httptools":
        assert first.conn is state.gone_engine
        assert first.conn not in state.spare_engines
    with pytest.raises(LocalProtocolError):
        state.gone_engine.send(Data(b"late"))

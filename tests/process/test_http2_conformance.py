"""HTTP/2 conformance (RFC 9113): every frame type and error case a client can drive, on the wire.

Each case opens a connection to one forked worker, completes the handshake, sends what the case
names (raw frames: most of them a client library refuses to send) and asserts on what came back:
the error code of the GOAWAY (a connection error) or of the RST_STREAM (a stream error, which
RFC 9113 §5.4.1 lets a server widen to a connection error), or the answer where the frame must be
ignored. After each case the worker still serves, and at the end it is the worker that started.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from prefork.server import Server
from prefork.testing import running_server
from tests.apps.h2apps import HELLO
from tests.process.h2wire import (
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    NO_ERROR,
    PADDED,
    PING,
    PRIORITY,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    STREAM_CLOSED,
    RawConnection,
    error_name,
    fetch,
    frame,
    request_headers,
    rst_stream,
    settings,
    window_update,
)

pytestmark = pytest.mark.process

APP = "tests.apps.h2apps:asgi"


@pytest.fixture(scope="module", params=["native", "h2"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A worker on each HTTP/2 engine (``--http2-engine``): the rules are the same."""
    with running_server(APP, workers=1, http2=True, http2_engine=request.param) as started:
        [worker] = started.worker_pids()
        yield started
        assert started.worker_pids() == [worker], "the worker was replaced"


@pytest.fixture
def client(server: Server) -> Iterator[RawConnection]:
    with RawConnection(server.port, timeout=10) as connection:
        connection.handshake()
        yield connection
    # whatever the case did, the worker serves the next client
    assert fetch(server.port) == [(200, HELLO)]


def _ended_by(client: RawConnection, stream_id: int | None) -> tuple[str, int | None]:
    """Read until the connection ends, or the stream is reset: ("goaway", code),
    ("reset", code) or ("open", None) if neither came."""
    def settled(connection: RawConnection) -> bool:
        return connection.closed or connection.goaway is not None or (
            stream_id is not None and stream_id in connection.resets())
    client.read_until(settled, timeout=5)
    if client.goaway is not None:
        return "goaway", client.goaway_code()
    if stream_id is not None and stream_id in client.resets():
        return "reset", client.resets()[stream_id]
    return ("closed", None) if client.closed else ("open", None)


def expect_connection_error(client: RawConnection, code: int) -> None:
    how, got = _ended_by(client, None)
    assert (how, error_name(got)) == ("goaway", error_name(code)), client.frames[-5:]
    client.read_until_closed(timeout=5)
    assert client.closed, "the connection stayed open after its GOAWAY"


def expect_stream_error(client: RawConnection, stream_id: int, code: int, *,
                        answered: bool = False) -> None:
    """RST_STREAM with ``code`` on the stream, or GOAWAY with it; never a 2xx answer unless
    the stream was ``answered`` before the frame at fault."""
    how, got = _ended_by(client, stream_id)
    assert how in ("reset", "goaway") and error_name(got) == error_name(code), \
        (how, error_name(got), client.frames[-5:])
    response = client.responses.get(stream_id)
    assert answered or response is None or response.status is None or response.status >= 400


def expect_served(client: RawConnection, stream_id: int = 1) -> None:
    """The connection still works: a fresh request on ``stream_id`` is answered."""
    client.request(stream_id, "/")
    response = client.response(stream_id, timeout=5)
    assert (response.status, response.body) == (200, HELLO), client.frames[-5:]
    assert client.goaway is None


# -- frames on the wrong stream, in the wrong state -------------------------------------------

def test_data_on_stream_zero(client: RawConnection) -> None:
    client.send(frame(DATA, 0, 0, b"x"))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_data_on_an_idle_stream(client: RawConnection) -> None:
    client.send(frame(DATA, END_STREAM, 5, b"x"))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_data_on_a_closed_stream(client: RawConnection) -> None:
    client.request(1, "/")
    assert client.response(1).status == 200
    client.send(frame(DATA, 0, 1, b"late"))
    expect_stream_error(client, 1, STREAM_CLOSED, answered=True)


def test_data_after_end_stream(client: RawConnection) -> None:
    """The stream is half-closed (remote) while ``/hold`` waits: more DATA is STREAM_CLOSED."""
    client.request(1, "/hold")
    client.send(frame(DATA, 0, 1, b"after the end"))
    expect_stream_error(client, 1, STREAM_CLOSED)


def test_headers_after_end_stream_that_are_not_trailers(client: RawConnection) -> None:
    client.request(1, "/hold")
    client.send(client.headers_frame(1, [("x-late", "1")], end_stream=True))
    expect_stream_error(client, 1, STREAM_CLOSED)


def test_even_stream_id(client: RawConnection) -> None:
    client.request(2, "/")
    expect_connection_error(client, PROTOCOL_ERROR)


def test_stream_id_lower_than_one_already_used(client: RawConnection) -> None:
    client.request(5, "/")
    assert client.response(5).status == 200
    client.request(3, "/")
    expect_connection_error(client, PROTOCOL_ERROR)


def test_stream_id_reused(client: RawConnection) -> None:
    client.request(1, "/")
    assert client.response(1).status == 200
    client.request(1, "/")
    how, got = _ended_by(client, 1)
    assert how in ("goaway", "reset") and got in (PROTOCOL_ERROR, STREAM_CLOSED), \
        (how, error_name(got))


def test_rst_stream_on_an_idle_stream(client: RawConnection) -> None:
    client.send(rst_stream(7))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_rst_stream_of_the_wrong_length(client: RawConnection) -> None:
    client.request(1, "/hold")
    client.send(frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x08\x00"))
    expect_connection_error(client, FRAME_SIZE_ERROR)


def test_continuation_without_headers(client: RawConnection) -> None:
    client.send(frame(CONTINUATION, END_HEADERS, 1, client.header_block(request_headers())))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_another_frame_inside_a_header_block(client: RawConnection) -> None:
    block = client.header_block(request_headers())
    client.send(frame(HEADERS, END_STREAM, 1, block[:5]) + frame(PING, 0, 0, b"\x00" * 8)
                + frame(CONTINUATION, END_HEADERS, 1, block[5:]))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_push_promise_from_a_client(client: RawConnection) -> None:
    client.request(1, "/hold")
    client.send(frame(PUSH_PROMISE, END_HEADERS, 1,
                      struct.pack(">L", 2) + client.header_block(request_headers())))
    expect_connection_error(client, PROTOCOL_ERROR)


# -- sizes ---------------------------------------------------------------------------------------

def test_data_beyond_the_max_frame_size(client: RawConnection) -> None:
    client.send(client.headers_frame(1, request_headers("/echo", "POST"), end_stream=False))
    client.send(frame(DATA, END_STREAM, 1, b"x" * 16385))
    how, got = _ended_by(client, 1)
    assert how in ("goaway", "reset") and got == FRAME_SIZE_ERROR, (how, error_name(got))


def test_headers_beyond_the_max_frame_size(client: RawConnection) -> None:
    """A frame that carries a field block alters the connection's HPACK state: its size
    error must end the connection (RFC 9113 §4.2)."""
    block = client.header_block(request_headers(extra=[("x-pad", "p" * 17000)]),
                                huffman=False)
    client.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    expect_connection_error(client, FRAME_SIZE_ERROR)


def test_body_beyond_the_stream_window(client: RawConnection) -> None:
    """The stream's window is 65,535 bytes until the server opens it; the client sends three
    times that without waiting for a WINDOW_UPDATE to an app that reads nothing."""
    window = client.server_settings.get(INITIAL_WINDOW_SIZE, 65535)
    client.send(client.headers_frame(1, request_headers("/stall", "POST"), end_stream=False))
    for _ in range(3 * window // 16384 + 1):
        client.send(frame(DATA, 0, 1, b"x" * 16384))
    how, got = _ended_by(client, 1)
    assert how in ("goaway", "reset") and got == FLOW_CONTROL_ERROR, (how, error_name(got))


def test_a_field_over_the_field_size_limit_is_431_and_the_connection_goes_on(
        client: RawConnection) -> None:
    """As on HTTP/1.1, a field longer than --limit-request-field-size is answered 431; on
    HTTP/2 that is the stream's business alone."""
    client.send(client.headers_frame(1, request_headers(extra=[("x-long", "v" * 9000)])))
    assert client.response(1).status == 431
    expect_served(client, 3)


def test_content_length_that_disagrees_with_the_body(client: RawConnection) -> None:
    client.send(client.headers_frame(1, request_headers("/echo", "POST",
                                                        extra=[("content-length", "10")]),
                                     end_stream=False))
    client.send(frame(DATA, END_STREAM, 1, b"12345"))
    expect_stream_error(client, 1, PROTOCOL_ERROR)


def test_padding_longer_than_the_frame(client: RawConnection) -> None:
    block = client.header_block(request_headers())
    client.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1,
                      bytes([len(block) + 10]) + block))
    expect_connection_error(client, PROTOCOL_ERROR)


# -- SETTINGS, PING, PRIORITY, WINDOW_UPDATE, GOAWAY, unknown frames ---------------------------

@dataclass(frozen=True)
class BadSettings:
    payload: bytes
    stream_id: int
    flags: int
    code: int


BAD_SETTINGS = {
    "enable-push-2": BadSettings(struct.pack(">HL", ENABLE_PUSH, 2), 0, 0, PROTOCOL_ERROR),
    "window-2^31": BadSettings(struct.pack(">HL", INITIAL_WINDOW_SIZE, 2**31), 0, 0,
                               FLOW_CONTROL_ERROR),
    "frame-size-too-small": BadSettings(struct.pack(">HL", MAX_FRAME_SIZE, 16383), 0, 0,
                                        PROTOCOL_ERROR),
    "frame-size-too-large": BadSettings(struct.pack(">HL", MAX_FRAME_SIZE, 2**24), 0, 0,
                                        PROTOCOL_ERROR),
    "length-not-a-multiple-of-6": BadSettings(b"\x00\x01\x00\x00", 0, 0, FRAME_SIZE_ERROR),
    "on-a-stream": BadSettings(b"", 1, 0, PROTOCOL_ERROR),
    "ack-with-a-payload": BadSettings(struct.pack(">HL", ENABLE_PUSH, 0), 0, 1,
                                      FRAME_SIZE_ERROR),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_settings(client: RawConnection, case: str, server: Server,
                      request: pytest.FixtureRequest) -> None:
    if case == "ack-with-a-payload" and server.config.http2_engine == "h2":
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="h2 (hyperframe) refuses it as PROTOCOL_ERROR"))
    bad = BAD_SETTINGS[case]
    client.send(frame(SETTINGS, bad.flags, bad.stream_id, bad.payload))
    expect_connection_error(client, bad.code)


def test_unknown_setting_is_ignored_and_settings_are_acknowledged(client: RawConnection) -> None:
    client.send(settings({0x99: 7, INITIAL_WINDOW_SIZE: 100_000}))
    client.read_until(lambda connection: any(
        received.type == SETTINGS and "ACK" in received.flags
        for received in connection.frames), timeout=5)
    assert any(received.type == SETTINGS and "ACK" in received.flags
               for received in client.frames)
    expect_served(client)


def test_ping_is_answered_with_its_payload(client: RawConnection) -> None:
    client.send(frame(PING, 0, 0, b"12345678"))
    client.read_until(lambda connection: any(received.type == PING
                                             for received in connection.frames), timeout=5)
    [pong] = [received for received in client.frames if received.type == PING]
    assert "ACK" in pong.flags and pong.opaque_data == b"12345678"


def test_ping_of_the_wrong_length(client: RawConnection) -> None:
    client.send(frame(PING, 0, 0, b"1234567"))
    expect_connection_error(client, FRAME_SIZE_ERROR)


def test_ping_on_a_stream(client: RawConnection) -> None:
    client.send(frame(PING, 0, 1, b"12345678"))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_priority_is_accepted_and_ignored(client: RawConnection) -> None:
    """PRIORITY on an idle stream, on an open one, and HEADERS carrying priority: all legal."""
    client.send(frame(PRIORITY, 0, 9, struct.pack(">LB", 0, 200)))
    block = client.header_block(request_headers())
    client.send(frame(HEADERS, END_STREAM | END_HEADERS | 0x20, 1,
                      struct.pack(">LB", 0x80000000 | 0, 15) + block))
    assert (client.response(1).status, client.response(1).body) == (200, HELLO)
    expect_served(client, 3)


def test_priority_of_the_wrong_length(client: RawConnection) -> None:
    client.request(1, "/hold")
    client.send(frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00"))
    expect_stream_error(client, 1, FRAME_SIZE_ERROR)


def test_priority_on_stream_zero(client: RawConnection) -> None:
    client.send(frame(PRIORITY, 0, 0, struct.pack(">LB", 1, 16)))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_window_update_of_zero_on_the_connection(client: RawConnection) -> None:
    client.send(window_update(0, 0))
    expect_connection_error(client, PROTOCOL_ERROR)


def test_window_update_of_zero_on_a_stream(client: RawConnection) -> None:
    client.request(1, "/hold")
    client.send(window_update(1, 0))
    expect_stream_error(client, 1, PROTOCOL_ERROR)


def test_window_overflow_on_the_connection(client: RawConnection) -> None:
    client.send(window_update(0, 2**31 - 1))
    expect_connection_error(client, FLOW_CONTROL_ERROR)


def test_window_overflow_on_a_stream(client: RawConnection) -> None:
    client.request(1, "/hold")
    client.send(window_update(1, 2**31 - 1))
    expect_stream_error(client, 1, FLOW_CONTROL_ERROR)


def test_unknown_frame_types_are_ignored(client: RawConnection) -> None:
    client.send(frame(0xFA, 0xFF, 0, b"whatever") + frame(0x42, 0, 1, b"\x00" * 100))
    expect_served(client)


def test_goaway_from_the_client(client: RawConnection) -> None:
    """The client says it opens no more streams; the one it opened is still answered."""
    client.request(1, "/")
    client.send(frame(GOAWAY, 0, 0, struct.pack(">LL", 0, NO_ERROR)))
    response = client.response(1)
    assert (response.status, response.body) == (200, HELLO)


# -- field rules (RFC 9113 §8.2, §8.3) -------------------------------------------------------

MALFORMED: dict[str, list[tuple[str, str]]] = {
    "uppercase-name": request_headers(extra=[("X-Upper", "1")]),
    "connection": request_headers(extra=[("connection", "keep-alive")]),
    "keep-alive": request_headers(extra=[("keep-alive", "timeout=5")]),
    "transfer-encoding": request_headers(extra=[("transfer-encoding", "chunked")]),
    "upgrade": request_headers(extra=[("upgrade", "websocket")]),
    "proxy-connection": request_headers(extra=[("proxy-connection", "keep-alive")]),
    "te-other-than-trailers": request_headers(extra=[("te", "gzip")]),
    "missing-path": [(":method", "GET"), (":scheme", "http"), (":authority", "localhost")],
    "empty-path": [(":method", "GET"), (":scheme", "http"), (":path", ""),
                   (":authority", "localhost")],
    "missing-method": [(":scheme", "http"), (":path", "/"), (":authority", "localhost")],
    "missing-scheme": [(":method", "GET"), (":path", "/"), (":authority", "localhost")],
    "duplicate-method": [(":method", "GET"), (":method", "POST"), (":scheme", "http"),
                         (":path", "/"), (":authority", "localhost")],
    "pseudo-after-regular": [(":method", "GET"), (":scheme", "http"), ("x-a", "1"),
                             (":path", "/"), (":authority", "localhost")],
    "unknown-pseudo": request_headers(extra=[(":foo", "bar")]),
    "response-pseudo": request_headers(extra=[(":status", "200")]),
    "newline-in-value": request_headers(extra=[("x-bad", "a\r\nb")]),
    "host-differs-from-authority": request_headers(extra=[("host", "elsewhere.example")]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_are_stream_errors(client: RawConnection, case: str) -> None:
    """PROTOCOL_ERROR on the stream (a 400 before it is allowed), never the app's answer."""
    client.send(client.headers_frame(1, MALFORMED[case]))
    expect_stream_error(client, 1, PROTOCOL_ERROR)


def _scope(client: RawConnection, stream_id: int,
           headers: list[tuple[str, str]]) -> dict[str, object]:
    client.send(client.headers_frame(stream_id, headers))
    response = client.response(stream_id)
    assert response.status == 200, (response, client.frames[-3:])
    return json.loads(response.body)  # type: ignore[no-any-return]


def test_authority_and_host(client: RawConnection) -> None:
    """:authority becomes the app's Host; a Host alone (no :authority) is taken; one that
    agrees with :authority is served; te: trailers is allowed."""
    def host(scope: dict[str, object]) -> list[str]:
        return [value for name, value in scope["headers"] if name == "host"]  # type: ignore[attr-defined]

    scope = _scope(client, 1, request_headers("/scope", authority="example.com:8080"))
    assert host(scope) == ["example.com:8080"] and scope["http_version"] == "2"
    scope = _scope(client, 3, [(":method", "GET"), (":scheme", "http"), (":path", "/scope"),
                               ("host", "only-host.example")])
    assert host(scope) == ["only-host.example"]
    scope = _scope(client, 5, request_headers("/scope", authority="same.example",
                                              extra=[("host", "same.example"),
                                                     ("te", "trailers")]))
    assert host(scope) == ["same.example"]


def test_cookie_fields_are_joined(client: RawConnection) -> None:
    """HTTP/2 lets a client split Cookie into several fields (RFC 9113 §8.2.3): the app sees
    one."""
    scope = _scope(client, 1, request_headers("/scope", extra=[("cookie", "a=1"),
                                                               ("cookie", "b=2")]))
    cookies = [value for name, value in scope["headers"] if name == "cookie"]  # type: ignore[attr-defined]
    assert cookies == ["a=1; b=2"]




# -- the h2c upgrade (RFC 7540 §3.2: RFC 9113 deprecates it, servers still meet it) -----------

def _upgrade(port: int, fields: str) -> bytes:
    """An HTTP/1.1 GET asking for h2c with ``fields``; what came back (until the close, the
    hello body or 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings"
                      "\r\nUpgrade: h2c\r\n" + fields + "\r\n").encode())
        received = b""
        with contextlib.suppress(OSError):
            while HELLO not in received and (data := sock.recv(65536)):
                received += data
    return received


def test_upgrade_without_http2_settings_is_served_over_http1(server: Server) -> None:
    answer = _upgrade(server.port, "")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(HELLO)


def test_upgrade_with_valid_settings_answers_on_stream_one(server: Server) -> None:
    answer = _upgrade(server.port, "HTTP2-Settings: AAMAAABkAAQAAP__\r\n")
    assert answer.startswith(b"HTTP/1.1 101 ")
    # the server's SETTINGS, then the answer to the upgraded request as HTTP/2 frames
    assert answer.endswith(HELLO) and b"\r\n\r\n\x00\x00" in answer


@pytest.mark.parametrize("fields", [
    "HTTP2-Settings: !!!notbase64\r\n",
    "HTTP2-Settings: AAEAAA\r\n",  # 4 bytes: not a whole setting
    "HTTP2-Settings: AAMAAABk\r\nHTTP2-Settings: AAMAAABk\r\n",  # two: MUST NOT upgrade
    "HTTP2-Settings: AAIAAAAC\r\n",  # ENABLE_PUSH 2
    "HTTP2-Settings: AAUAAAAA\r\n",  # MAX_FRAME_SIZE 0
], ids=["not-base64", "not-whole-settings", "twice", "push-2", "frame-size-0"])
def test_upgrade_with_bad_settings_is_not_taken(server: Server, fields: str) -> None:
    """RFC 7540 §3.2.1: no upgrade unless exactly one valid HTTP2-Settings; the request is
    answered over HTTP/1.1 (or refused with 400), never upgraded into a dead connection."""
    answer = _upgrade(server.port, fields)
    assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 400 ")), answer[:100]

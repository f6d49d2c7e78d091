"""Response side of the HTTP engine: heads, framing, Date/Server, misuse by the application.

Responses are checked with an in-memory h11 client as the oracle of well-formedness.
"""

from __future__ import annotations

import h11
import pytest
from http_fixtures import FIXED_CLOCK, client_read, drain, make, parser, respond

from prefork.errors import LocalProtocolError, RemoteProtocolError
from prefork.http import (
    Data,
    DateCache,
    EndOfMessage,
    InformationalResponse,
    Response,
    ServerConnection,
)
from prefork.http.headers import imf_fixdate

__all__ = ["parser"]  # the fixture, imported for pytest


def ready(
    parser: str, raw: bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", **kw: object
) -> ServerConnection:
    conn = make(parser, **kw)
    conn.receive_data(raw)
    drain(conn)
    return conn


def head_of(out: bytes) -> list[bytes]:
    return out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_content_length_response(parser: str) -> None:
    conn = ready(parser)
    out = respond(conn, body=b"hello", headers=[(b"Content-Type", b"text/plain"),
                                                (b"Content-Length", b"5")])  # fmt: skip
    assert head_of(out) == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: text/plain",
        b"content-length: 5",
        b"date: Sun, 06 Nov 1994 08:49:37 GMT",
        b"server: prefork",
    ]
    events = client_read(out)
    assert isinstance(events[0], h11.Response) and events[0].status_code == 200
    assert bytes(events[1].data) == b"hello"  # type: ignore[attr-defined]
    assert conn.our_state == "DONE" and conn.keep_alive
    conn.start_next_cycle()


def test_chunked_response_with_trailers(parser: str) -> None:
    conn = ready(parser)
    out = conn.send(Response(200, [(b"trailer", b"x-checksum")]))
    assert b"transfer-encoding: chunked\r\n" in out
    out += conn.send(Data(b"hello")) + conn.send(Data(b"")) + conn.send(Data(b" world"))
    out += conn.send(EndOfMessage([(b"x-checksum", b"abc")]))
    assert out.endswith(b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n")
    events = client_read(out)
    assert bytes(events[1].data) == b"hello world"  # type: ignore[attr-defined]
    assert list(events[2].headers) == [(b"x-checksum", b"abc")]  # type: ignore[attr-defined]


def test_http10_close_delimited(parser: str) -> None:
    conn = ready(parser, b"GET / HTTP/1.0\r\n\r\n")
    out = conn.send(Response(200, []))
    assert b"transfer-encoding" not in out and b"content-length" not in out
    assert b"connection: close\r\n" in out
    assert conn.send(Data(b"abc")) == b"abc"
    assert conn.send(EndOfMessage()) == b""
    assert conn.our_state == "MUST_CLOSE"


def test_http10_keep_alive_without_length_closes(parser: str) -> None:
    conn = ready(parser, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = conn.send(Response(200, []))
    assert b"connection: close\r\n" in out and not conn.keep_alive


@pytest.mark.parametrize(
    ("method", "status", "length_kept"),
    [("HEAD", 200, True), ("GET", 204, False), ("GET", 304, True), ("HEAD", 404, True)],
)
def test_no_body_responses(parser: str, method: str, status: int, length_kept: bool) -> None:
    conn = ready(parser, method.encode() + b" / HTTP/1.1\r\nHost: h\r\n\r\n")
    out = conn.send(Response(status, [(b"content-length", b"42")]))
    assert (b"content-length: 42\r\n" in out) is length_kept
    assert b"transfer-encoding" not in out
    assert conn.send(Data(b"x" * 100)) == b""
    assert conn.send(EndOfMessage()) == b""
    events = client_read(out, method=method)
    assert isinstance(events[0], h11.Response) and events[0].status_code == status
    assert isinstance(events[1], h11.EndOfMessage)
    assert conn.keep_alive
    conn.start_next_cycle()


def test_head_without_length_keeps_alive(parser: str) -> None:
    conn = ready(parser, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    out = conn.send(Response(200, []))
    assert b"content-length" not in out and b"transfer-encoding" not in out
    conn.send(EndOfMessage())
    conn.start_next_cycle()


def test_content_length_overrun_and_underrun(parser: str) -> None:
    conn = ready(parser)
    conn.send(Response(200, [(b"content-length", b"3")]))
    assert conn.send(Data(b"ab")) == b"ab"
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"cd"))
    assert conn.our_state == "ERROR" and not conn.keep_alive

    conn = ready(parser)
    conn.send(Response(200, [(b"content-length", b"3")]))
    conn.send(Data(b"ab"))
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())
    assert conn.our_state == "ERROR"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"text/plain"), (b"content-length", b"5")],  # exact length
        [(b"content-type", b"text/plain")],  # chunked
    ],
)
def test_send_whole_matches_three_sends(parser: str, headers: list[tuple[bytes, bytes]]) -> None:
    one = ready(parser)
    three = ready(parser)
    out = one.send_whole(Response(200, headers), b"hello")
    assert out == (three.send(Response(200, headers)) + three.send(Data(b"hello"))
                   + three.send(EndOfMessage()))
    assert bytes(client_read(out)[1].data) == b"hello"  # type: ignore[attr-defined]
    assert one.our_state == "DONE" and one.keep_alive
    assert one.start_next_cycle() is False  # nothing buffered: no events to ask for


def test_send_whole_errors(parser: str) -> None:
    conn = ready(parser)
    with pytest.raises(LocalProtocolError):  # a bad head: nothing emitted, a 500 can follow
        conn.send_whole(Response(200, [(b"x-bad", b"a\nb")]), b"")
    assert conn.our_state == "IDLE"
    assert conn.error_response(LocalProtocolError("x", 500)).startswith(b"HTTP/1.1 500 ")
    for body in (b"ab", b"abcd"):  # shorter and longer than the Content-Length
        conn = ready(parser)
        with pytest.raises(LocalProtocolError):
            conn.send_whole(Response(200, [(b"content-length", b"3")]), body)
        assert conn.our_state == "ERROR" and not conn.keep_alive
    conn = ready(parser)
    conn.send(Response(200, []))
    with pytest.raises(LocalProtocolError):  # only at the start of a response
        conn.send_whole(Response(200, []), b"")


def test_start_next_cycle_says_when_events_may_be_ready(parser: str) -> None:
    conn = ready(parser, b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    respond(conn)
    assert conn.start_next_cycle() is True  # the pipelined request waits
    drain(conn)
    respond(conn)
    conn.receive_data(b"")
    assert conn.start_next_cycle() is True  # the EOF is an event to deliver


@pytest.mark.parametrize(
    "fields",
    [
        [(b"x-bad", b"a\r\nSet-Cookie: evil=1")],
        [(b"x-bad", b"a\nb")],
        [(b"x-bad", b"a\rb")],
        [(b"x-bad", b"a\x00b")],
        [(b"x bad", b"1")],
        [(b"x-bad:", b"1")],
        [(b"", b"1")],
        [(b"x-ok\r\nx-injected", b"1")],
        [("x-str", b"1")],
        [(b"x-str", "1")],
        [(b"content-length", b"abc")],
        [(b"content-length", b"3"), (b"content-length", b"4")],
    ],
)
def test_bad_response_fields(parser: str, fields: list[tuple[bytes, bytes]]) -> None:
    conn = ready(parser)
    with pytest.raises(LocalProtocolError) as info:
        conn.send(Response(200, fields))
    assert info.value.status_hint == 500
    assert conn.our_state == "IDLE"  # nothing was emitted: a 500 can still be sent
    out = conn.error_response(info.value)
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_bad_reason_and_status(parser: str) -> None:
    conn = ready(parser)
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, [], reason=b"OK\r\nX: y"))
    for status in (99, 100, 199, 1000):
        with pytest.raises(LocalProtocolError):
            conn.send(Response(status, []))
    out = conn.send(Response(299, [], reason=b"Custom Thing"))
    assert out.startswith(b"HTTP/1.1 299 Custom Thing\r\n")


def test_app_hop_by_hop_fields(parser: str) -> None:
    conn = ready(parser)
    out = conn.send(
        Response(
            200,
            [
                (b"Transfer-Encoding", b"chunked"),
                (b"Connection", b"keep-alive"),
                (b"Keep-Alive", b"timeout=5"),
                (b"content-length", b"2"),
            ],
        )
    )
    assert head_of(out)[1:3] == [b"content-length: 2", b"date: Sun, 06 Nov 1994 08:49:37 GMT"]
    assert conn.keep_alive


def test_app_connection_close_is_honoured(parser: str) -> None:
    conn = ready(parser)
    out = conn.send(Response(426, [(b"Connection", b"Upgrade, close"), (b"Upgrade", b"h2c")]))
    assert b"connection: close, upgrade\r\n" in out and b"Upgrade: h2c\r\n" in out
    assert not conn.keep_alive


def test_close_after_response(parser: str) -> None:
    conn = ready(parser)
    conn.close_after_response()
    out = respond(conn)
    assert b"connection: close\r\n" in out and conn.our_state == "MUST_CLOSE"


def test_server_and_date_options(parser: str) -> None:
    conn = ready(parser, server_header=None, date_header=False)
    out = respond(conn)
    assert b"server:" not in out and b"date:" not in out
    conn = ready(parser, server_header=b"custom/1.0")
    out = conn.send(Response(200, [(b"Server", b"app"), (b"Date", b"yesterday")]))
    assert b"server: custom" not in out and b"Server: app\r\n" in out
    assert out.count(b"ate: ") == 1


def test_date_cache_recomputes_once_per_second() -> None:
    now = [FIXED_CLOCK + 0.1]
    cache = DateCache(lambda: now[0])
    first = cache.line()
    assert first == b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    now[0] = FIXED_CLOCK + 0.9
    assert cache.line() is first  # same second: the cached bytes object
    now[0] = FIXED_CLOCK + 1.0
    assert cache.value() == b"Sun, 06 Nov 1994 08:49:38 GMT"
    assert imf_fixdate(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert imf_fixdate(951782400) == b"Tue, 29 Feb 2000 00:00:00 GMT"


def test_shared_date_cache(parser: str) -> None:
    cache = DateCache(lambda: 0.0)
    conn = ready(parser, date_cache=cache)
    assert b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n" in respond(conn)


def test_informational_rules(parser: str) -> None:
    conn = ready(parser, b"GET / HTTP/1.0\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))  # HTTP/1.0 has no 1xx
    conn = ready(parser)
    out = conn.send(InformationalResponse(103, [(b"link", b"</a.css>; rel=preload")]))
    assert out == b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
    respond(conn)
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(100))  # only before the final response
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"late"))


def test_send_order_is_enforced(parser: str) -> None:
    conn = ready(parser)
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"x"))
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfMessage())
    conn.send(Response(200, []))
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, []))


def test_error_response_after_start_is_empty(parser: str) -> None:
    conn = ready(parser)
    conn.send(Response(200, []))
    assert conn.error_response(RemoteProtocolError("late", 400)) == b""
    assert conn.our_state == "MUST_CLOSE"


def test_error_response_statuses(parser: str) -> None:
    for status in (413, 414, 431, 505):
        conn = make(parser)
        out = conn.error_response(RemoteProtocolError("x", status))
        events = client_read(out)
        assert isinstance(events[0], h11.Response) and events[0].status_code == status


def test_keep_alive_sequence_through_h11_client(parser: str) -> None:
    """Three cycles on one connection, each answered and read back by a real client."""
    conn = make(parser)
    client = h11.Connection(h11.CLIENT)
    for number in range(3):
        fields = [("Host", "x"), ("Transfer-Encoding", "chunked")]
        parts = [
            client.send(h11.Request(method="POST", target=f"/{number}", headers=fields)),
            client.send(h11.Data(data=b"payload")),
            client.send(h11.EndOfMessage()),
        ]
        conn.receive_data(b"".join(p for p in parts if p))
        events = drain(conn)
        assert events[0].target == b"/%d" % number  # type: ignore[attr-defined]
        assert events[1] == Data(b"payload")
        out = conn.send(Response(200, [])) + conn.send(Data(b"r%d" % number))
        client.receive_data(out + conn.send(EndOfMessage()))
        response = client.next_event()
        assert isinstance(response, h11.Response) and response.status_code == 200
        body = client.next_event()
        assert isinstance(body, h11.Data) and bytes(body.data) == b"r%d" % number
        assert isinstance(client.next_event(), h11.EndOfMessage)
        client.start_next_cycle()
        conn.start_next_cycle()


@pytest.mark.parametrize(("method", "status", "on_wire"), [
    (b"GET", 200, True), (b"HEAD", 200, False), (b"GET", 304, False),
])
def test_body_sent_elsewhere_is_held_to_content_length(parser: str, method: bytes, status: int,
                                                       on_wire: bool) -> None:
    from prefork.http.connection import ServerConnection

    conn = ServerConnection(parser=parser)
    conn.receive_data(method + b" /f HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.send(Response(status, [(b"content-length", b"10")]))
    assert conn.send_body_elsewhere(6) is on_wire
    if on_wire:
        with pytest.raises(LocalProtocolError):
            conn.send(EndOfMessage())  # 4 bytes short
    else:
        assert conn.send(EndOfMessage()) == b""


def _client_body(raw: bytes) -> bytes:
    """The body an h11 client reads from ``raw``, which must be one whole response."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/f", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    events = list(iter(client.next_event, h11.NEED_DATA))
    assert isinstance(events[-1], h11.EndOfMessage)
    return b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))


def test_body_framed_elsewhere_chunked(parser: str) -> None:
    conn = ready(parser)
    head = conn.send(Response(200, []))
    before, after = conn.frame_body_elsewhere(6) or (b"?", b"?")
    assert (before, after) == (b"6\r\n", b"\r\n")
    rest = conn.send(Data(b"rest")) + conn.send(EndOfMessage())
    assert _client_body(head + before + b"sixsix" + after + rest) == b"sixsixrest"
    assert conn.body_sent == 10


def test_body_framed_elsewhere_content_length(parser: str) -> None:
    conn = ready(parser)
    head = conn.send(Response(200, [(b"content-length", b"10")]))
    assert conn.frame_body_elsewhere(6) == (b"", b"")
    rest = conn.send(Data(b"rest")) + conn.send(EndOfMessage())
    assert _client_body(head + b"sixsix" + rest) == b"sixsixrest"


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204)])
def test_body_framed_elsewhere_not_on_the_wire(parser: str, method: bytes, status: int) -> None:
    conn = ready(parser, method + b" /f HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.send(Response(status, []))
    assert conn.frame_body_elsewhere(6) is None
    assert conn.send(EndOfMessage()) == b""


def test_body_framed_elsewhere_empty_chunk_is_not_the_end(parser: str) -> None:
    conn = ready(parser)
    conn.send(Response(200, []))
    assert conn.frame_body_elsewhere(0) == (b"", b"")


def test_body_framed_elsewhere_beyond_content_length_fails(parser: str) -> None:
    conn = ready(parser)
    conn.send(Response(200, [(b"content-length", b"3")]))
    with pytest.raises(LocalProtocolError):
        conn.frame_body_elsewhere(4)
    assert conn.our_state == "ERROR"


def test_early_hints_do_not_answer_expect_continue(parser: str) -> None:
    conn = ServerConnection(parser=parser)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    conn.next_event()
    hint = conn.send(InformationalResponse(103, [(b"link", b"</a.css>; rel=preload")]))
    assert hint == b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
    assert conn.client_is_waiting_for_100_continue
    conn.send(InformationalResponse(100))
    assert not conn.client_is_waiting_for_100_continue


def test_informational_refused_to_http10(parser: str) -> None:
    conn = ready(parser, b"GET / HTTP/1.0\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(103, [(b"link", b"</a.css>; rel=preload")]))
    assert conn.send_whole(Response(200, []), b"ok").endswith(b"ok")

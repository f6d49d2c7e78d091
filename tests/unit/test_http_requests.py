"""Request side of the HTTP engine: tokenising, framing, pipelining, keep-alive, upgrade, EOF.

Every test runs against both parser backends (the ``parser`` fixture).
"""

from __future__ import annotations

import pytest
from http_fixtures import drain, feed_pieces, make, merge_data, parser, request_of, respond

from prefork.errors import LocalProtocolError, RemoteProtocolError
from prefork.http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Limits,
    Request,
    Response,
)

__all__ = ["parser"]  # the fixture, imported for pytest

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  spaced value  \r\n\r\n"
POST_CL = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
POST_CHUNKED = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)
SAMPLES = [GET, POST_CL, POST_CHUNKED, GET + POST_CL + POST_CHUNKED]


def test_simple_get(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(GET)
    events = drain(conn)
    assert events == [
        Request(
            method=b"GET",
            target=b"/a?b=1",
            http_version=b"1.1",
            headers=[(b"host", b"example.com"), (b"x-thing", b"spaced value")],
            keep_alive=True,
            expect_continue=False,
            upgrade=None,
        ),
        EndOfMessage(),
    ]
    assert conn.their_state == "DONE" and conn.our_state == "IDLE"
    assert conn.next_event() is NEED_DATA


def test_content_length_body(parser: str) -> None:
    events = feed_pieces(parser, [POST_CL])
    assert events[1:] == [Data(b"hello world"), EndOfMessage()]


def test_chunked_body_and_trailers(parser: str) -> None:
    events = feed_pieces(parser, [POST_CHUNKED])
    assert events[1:] == [Data(b"hello world"), EndOfMessage([(b"x-trailer", b"t")])]


@pytest.mark.parametrize("sample", SAMPLES, ids=["get", "cl", "chunked", "all"])
def test_byte_at_a_time_and_every_split(parser: str, sample: bytes) -> None:
    def run(pieces: list[bytes]) -> list[object]:
        conn = make(parser)
        events: list[object] = []
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                events += drain(conn)
                if conn.their_state == "DONE" and conn.our_state == "IDLE":
                    respond(conn)
                    conn.start_next_cycle()
                    continue
                break
        return merge_data(events)

    whole = run([sample])
    assert run([bytes([b]) for b in sample]) == whole
    for offset in range(1, len(sample)):
        assert run([sample[:offset], sample[offset:]]) == whole, offset


def test_both_parsers_agree_on_samples() -> None:
    for sample in SAMPLES:
        assert feed_pieces("httptools", [sample]) == feed_pieces("h11", [sample])


def test_pipelining_three_requests_in_one_packet(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    seen = []
    for number in (1, 2, 3):
        events = drain(conn)
        assert request_of(events).target == b"/%d" % number
        seen.append(request_of(events).target)
        assert events[-1] == EndOfMessage()
        expected = PAUSED if number < 3 else NEED_DATA
        assert conn.next_event() is expected
        with pytest.raises(LocalProtocolError):
            conn.start_next_cycle()  # our response is not done yet
        respond(conn, body=b"%d" % number)
        conn.start_next_cycle()
    assert seen == [b"/1", b"/2", b"/3"]
    assert conn.next_event() is NEED_DATA


def _versions(parser: str, pieces: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(target, version) of each request, the pieces fed one at a time and each answered."""
    conn = make(parser)
    seen: list[tuple[bytes, bytes]] = []
    for piece in pieces:
        conn.receive_data(piece)
        while True:
            events = drain(conn)
            seen += [(e.target, e.http_version) for e in events if isinstance(e, Request)]
            if not events or events[-1] != EndOfMessage():
                break
            respond(conn)
            conn.start_next_cycle()
    return seen


TEN = b"GET /0 HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
ELEVEN = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"


T0, T1 = (b"/0", b"1.0"), (b"/1", b"1.1")


@pytest.mark.parametrize("pieces, expected", [
    ([TEN + ELEVEN + TEN], [T0, T1, T0]),  # pipelined: the first begins the feed, not the rest
    ([ELEVEN + TEN, ELEVEN], [T1, T0, T1]),
    ([ELEVEN, TEN[:12], TEN[12:], ELEVEN], [T1, T0, T1]),  # a request line cut in two
    ([ELEVEN + TEN[:14], TEN[14:] + ELEVEN], [T1, T0, T1]),  # cut inside its version
    ([ELEVEN[:-2], ELEVEN[-2:] + TEN], [T1, T0]),  # a feed that starts inside a head
    ([b"GET /HTTP/1.1 HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n" + ELEVEN],
     [(b"/HTTP/1.1", b"1.0"), T1]),  # the version is the line's last word
])
def test_each_request_has_its_own_version_however_fed(
        parser: str, pieces: list[bytes], expected: list[tuple[bytes, bytes]]) -> None:
    assert _versions(parser, pieces) == expected


def test_pipelined_error_waits_its_turn(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/9.9\r\nHost: h\r\n\r\n")
    assert request_of(drain(conn)).target == b"/1"
    assert conn.next_event() is PAUSED
    respond(conn)
    conn.start_next_cycle()
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint in (400, 505)
    assert conn.their_state == "ERROR"
    with pytest.raises(RemoteProtocolError):
        conn.next_event()  # it keeps raising


def test_keep_alive_rules(parser: str) -> None:
    cases = {
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n": True,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n": False,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n": False,
        b"GET / HTTP/1.0\r\n\r\n": False,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n": True,
        b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: Keep-Alive\r\n\r\n": True,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: a\r\nConnection: b\r\nConnection: Close\r\n\r\n":
            False,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: \r\n\r\n": True,
    }
    for raw, keep in cases.items():
        conn = make(parser)
        conn.receive_data(raw)
        request = request_of(drain(conn))
        assert request.keep_alive is keep, raw
        assert conn.keep_alive is keep
        assert conn.their_state == ("DONE" if keep else "MUST_CLOSE")


def test_http10_keep_alive_cycle(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert request_of(drain(conn)).http_version == b"1.0"
    out = respond(conn)
    assert b"connection: keep-alive\r\n" in out
    conn.start_next_cycle()
    conn.receive_data(b"GET /2 HTTP/1.0\r\n\r\n")
    assert request_of(drain(conn)).target == b"/2"
    out = respond(conn)
    assert b"connection: close\r\n" in out
    assert conn.our_state == "MUST_CLOSE"
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_data_after_close_request_is_ignored(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert len(drain(conn)) == 2
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"garbage")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_eof_between_requests(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.their_state == "CLOSED"
    assert not conn.keep_alive


def test_eof_after_complete_request(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(GET)
    conn.receive_data(b"")
    events = drain(conn)
    assert isinstance(events[-1], ConnectionClosed)
    assert conn.their_state == "CLOSED"
    respond(conn)  # a half-closed client still gets its answer
    assert conn.our_state == "MUST_CLOSE"


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        (b"GET / HT", "IDLE"),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab", "SEND_BODY"),
    ],
)
def test_eof_mid_request_is_incomplete(parser: str, raw: bytes, state: str) -> None:
    conn = make(parser)
    conn.receive_data(raw)
    conn.receive_data(b"")
    events = drain(conn)
    assert isinstance(events[-1], ConnectionClosed)
    assert conn.their_state == state  # not CLOSED: the request was cut short
    assert isinstance(conn.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


def test_expect_100_continue(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
    )
    request = request_of(drain(conn))
    assert request.expect_continue
    assert conn.client_is_waiting_for_100_continue
    assert conn.send(InformationalResponse(100)) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.client_is_waiting_for_100_continue
    conn.receive_data(b"abc")
    assert drain(conn) == [Data(b"abc"), EndOfMessage()]
    out = respond(conn)
    assert b"connection: close" not in out
    conn.start_next_cycle()


def test_expect_100_continue_cleared_by_body(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\na"
    )
    drain(conn)
    assert not conn.client_is_waiting_for_100_continue


def test_final_response_to_waiting_client_closes(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    drain(conn)
    out = respond(conn, status=413, body=b"")
    assert b"connection: close\r\n" in out
    assert not conn.keep_alive


def test_expect_without_body_or_on_http10_is_ignored(parser: str) -> None:
    for raw in (
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    ):
        conn = make(parser)
        conn.receive_data(raw)
        assert not request_of(drain(conn)).expect_continue
        assert not conn.client_is_waiting_for_100_continue


def test_early_response_then_discard_body(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nabc")
    drain(conn)
    respond(conn)
    assert conn.our_state == "DONE" and conn.their_state == "SEND_BODY"
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()
    conn.receive_data(b"defGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert drain(conn) == [Data(b"def"), EndOfMessage()]
    conn.start_next_cycle()
    assert request_of(drain(conn)).target == b"/2"


def test_buffered_bytes_and_trailing_pipeline(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd")
    assert conn.buffered_bytes > 0
    drain(conn)
    assert conn.buffered_bytes == 0
    conn.receive_data(b"x" * 1000)
    assert conn.buffered_bytes == 1000
    assert conn.next_event() is PAUSED


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
        b"Upgrade: WebSocket\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 3\r\n\r\n",
    ],
)
def test_upgrade_request(parser: str, raw: bytes) -> None:
    conn = make(parser)
    conn.receive_data(raw + b"\x81\x05hello")
    events = drain(conn)
    assert request_of(events).upgrade == b"websocket"
    assert events[1:] == [EndOfMessage()]
    assert conn.their_state == "MUST_CLOSE" and not conn.keep_alive
    assert conn.trailing_data == b"\x81\x05hello"
    conn.receive_data(b"more")
    assert conn.trailing_data == b"\x81\x05hellomore"
    assert conn.next_event() is NEED_DATA
    switch = conn.send(
        InformationalResponse(101, [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    )
    assert switch.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert conn.our_state == "MUST_CLOSE"


H2C_POST = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 11\r\n\r\n"
    b"hello world"
)


@pytest.mark.parametrize("upgrades", [None, frozenset()])
@pytest.mark.parametrize("split", [False, True])
def test_declined_upgrade_is_an_ordinary_request_with_its_body(
        parser: str, upgrades: frozenset[bytes] | None, split: bool) -> None:
    """curl --http2 on a cleartext URL asks for h2c; a WebSocket under WSGI is declined too:
    the request is served with its whole body, and the connection ends after it."""
    raw = H2C_POST if upgrades is None else H2C_POST.replace(b"h2c", b"websocket")
    pieces = [raw[i:i + 1] for i in range(len(raw))] if split else [raw + b"GET / HTTP/1.1\r\n"]
    kwargs = {} if upgrades is None else {"upgrades": upgrades}
    events = feed_pieces(parser, pieces, **kwargs)
    assert request_of(events).upgrade is None
    assert (b"upgrade", b"websocket" if upgrades is not None else b"h2c") in events[0].headers
    assert events[1:] == [Data(b"hello world"), EndOfMessage()]


def test_declined_upgrade_closes_after_its_response(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(H2C_POST)
    drain(conn)
    assert not conn.keep_alive and conn.trailing_data == b""
    assert b"connection: close" in respond(conn).lower()


def test_declined_upgrade_with_a_chunked_body_is_refused(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as caught:
        drain(conn)
    assert caught.value.status_hint == 400


def test_upgrade_needs_connection_token(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    events = drain(conn)
    assert request_of(events).upgrade is None
    assert conn.keep_alive and conn.trailing_data == b""
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(101))


def test_connect_ends_at_head(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nTLS")
    events = drain(conn)
    assert request_of(events).method == b"CONNECT"
    assert events[1:] == [EndOfMessage()]
    assert conn.trailing_data == b"TLS" and not conn.keep_alive


def test_leading_empty_lines_are_ignored(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"\r\n\r\n" + GET)
    assert request_of(drain(conn)).target == b"/a?b=1"


def test_receive_after_error_is_ignored(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    conn.receive_data(GET)
    assert conn.buffered_bytes == 0


def test_limits_validation() -> None:
    from prefork.errors import ConfigError

    for field in ("max_request_line", "max_headers", "max_header_size", "max_buffer"):
        with pytest.raises(ConfigError, match=field):
            Limits(**{field: 0})  # type: ignore[arg-type]
    for field in ("keep_alive_timeout", "headers_timeout", "body_timeout"):
        with pytest.raises(ConfigError, match=field):
            Limits(**{field: -1.0})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_body_size"):
        Limits(max_body_size=-1)
    assert Limits(max_body_size=0).max_body_size == 0
    with pytest.raises(ConfigError, match="parser"):
        make("nope")


def test_response_requires_request(parser: str) -> None:
    conn = make(parser)
    with pytest.raises(LocalProtocolError):
        conn.send(Response(200, []))


# -- receive_request: a whole request in one call ---------------------------------------------


def test_receive_request_takes_a_whole_get_or_small_post(parser: str) -> None:
    conn = make(parser)
    whole = conn.receive_request(GET)
    assert whole is not None
    request, body = whole
    assert request.target == b"/a?b=1" and body == b""
    assert conn.next_event() is NEED_DATA and conn.buffered_bytes == 0
    respond(conn)
    assert conn.reuse() is False  # nothing more was received
    whole = conn.receive_request(POST_CL)
    assert whole is not None and whole[0].method == b"POST" and whole[1] == b"hello world"
    assert conn.next_event() is NEED_DATA and conn.buffered_bytes == 0  # the body is taken


@pytest.mark.parametrize("data", [
    POST_CHUNKED,  # a body in two pieces, and trailers
    GET + GET,  # pipelined
    GET[:-2],  # an incomplete head
    POST_CL[:-1],  # an incomplete body
    b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\ntoo long by far",
], ids=["chunked", "pipelined", "partial-head", "partial-body", "expect", "extra-bytes"])
def test_receive_request_leaves_the_rest_to_next_event(parser: str, data: bytes) -> None:
    # The same events as receive_data would give, taken the long way.
    conn, reference = make(parser), make(parser)
    assert conn.receive_request(data) is None
    reference.receive_data(data)
    assert drain(conn) == drain(reference)


def test_receive_request_leaves_a_body_past_max_buffer(parser: str) -> None:
    # A body larger than max_buffer goes the long way, where the protocol pauses reading.
    conn = make(parser, Limits(max_buffer=8))
    assert conn.receive_request(POST_CL) is None
    assert merge_data(drain(conn))[1] == Data(b"hello world")


def test_released_connection_still_answers_but_reads_nothing(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(GET)
    drain(conn)
    conn.release()  # the client is gone: the parser is dropped
    conn.release()  # twice is harmless
    assert conn.send(Response(200, [(b"content-length", b"2")])).startswith(b"HTTP/1.1 200 ")
    fresh = make(parser)
    fresh.release()
    fresh.receive_data(GET)
    with pytest.raises(RuntimeError, match="released"):
        fresh.next_event()  # never happens in a server: nothing is received after the loss


@pytest.mark.parametrize(("raw", "host"), [
    # RFC 9112 §3.2.2: the target's authority, not Host, names the host
    (b"GET http://origin.example:8080/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n",
     b"origin.example:8080"),
    (b"GET https://origin.example?q HTTP/1.1\r\nHost: origin.example\r\n\r\n", b"origin.example"),
    (b"GET http://origin.example/ HTTP/1.0\r\n\r\n", b"origin.example"),
])
def test_absolute_form_authority_replaces_host(parser: str, raw: bytes, host: bytes) -> None:
    conn = make(parser)
    conn.receive_data(raw)
    request = request_of(drain(conn))
    assert [value for name, value in request.headers if name == b"host"] == [host]


@pytest.mark.parametrize("raw", [
    b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \r\n\r\n",  # RFC 9110 §7.2: empty when the target has no host
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8000\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
])
def test_target_forms_and_hosts_accepted(parser: str, raw: bytes) -> None:
    conn = make(parser)
    conn.receive_data(raw)
    assert request_of(drain(conn)).target == raw.split(b" ")[1]


@pytest.mark.parametrize("raw", [
    b"GET * HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET foo/bar HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"CONNECT / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET http://a@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a@example.com\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: example.com:80:80\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: evil.example#x\r\n\r\n",
])
def test_target_forms_and_hosts_refused(parser: str, raw: bytes) -> None:
    conn = make(parser)
    conn.receive_data(raw)
    with pytest.raises(RemoteProtocolError) as caught:
        drain(conn)
    assert caught.value.status_hint == 400

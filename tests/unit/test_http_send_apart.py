"""``send_apart``: the one-piece response of ``send_whole`` with its head and body apart.

The two pieces written one after the other are the bytes ``send_whole`` returns, for every
framing (Content-Length, chunked, close-delimited, no body); the errors and the states they
leave are send_whole's; and the framing field line comes from one ``response_framing`` call.
"""

from __future__ import annotations

import pytest
from http_fixtures import client_read, drain, make, parser

from prefork.errors import LocalProtocolError
from prefork.http import Response, ServerConnection, framing
from prefork.http.connection import JOIN_LIMIT

__all__ = ["parser"]  # the fixture, imported for pytest

BODY = b"x" * (JOIN_LIMIT + 1)


def ready(parser: str, raw: bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") -> ServerConnection:
    conn = make(parser)
    conn.receive_data(raw)
    drain(conn)
    return conn


@pytest.mark.parametrize(("raw", "headers"), [
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", [(b"content-length", b"%d" % len(BODY))]),
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", [(b"content-type", b"text/plain")]),  # chunked
    (b"GET / HTTP/1.0\r\n\r\n", [(b"content-type", b"text/plain")]),  # close-delimited
    (b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", [(b"content-length", b"%d" % len(BODY))]),
])
def test_pieces_are_send_whole_s_bytes(parser: str, raw: bytes,
                                       headers: list[tuple[bytes, bytes]]) -> None:
    whole = ready(parser, raw)
    apart = ready(parser, raw)
    joined = whole.send_whole(Response(200, headers), BODY)
    head, rest = apart.send_apart(Response(200, headers), BODY)
    assert head + rest == joined
    assert head.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in head[:-4]
    assert (apart.our_state, apart.keep_alive, apart.body_sent) == \
        (whole.our_state, whole.keep_alive, whole.body_sent)
    if raw.startswith(b"GET / HTTP/1.1"):
        assert bytes(client_read(joined)[1].data) == BODY  # type: ignore[attr-defined]


def test_an_exact_length_body_is_not_copied(parser: str) -> None:
    conn = ready(parser)
    _, rest = conn.send_apart(Response(200, [(b"content-length", b"%d" % len(BODY))]), BODY)
    assert rest is BODY


def test_errors_are_send_whole_s(parser: str) -> None:
    conn = ready(parser)
    with pytest.raises(LocalProtocolError):  # a bad head: nothing emitted, a 500 can follow
        conn.send_apart(Response(200, [(b"x-bad", b"a\r\nb")]), BODY)
    assert conn.our_state == "IDLE"
    for body in (BODY[:-1], BODY + b"x"):  # shorter and longer than the Content-Length
        conn = ready(parser)
        with pytest.raises(LocalProtocolError):
            conn.send_apart(Response(200, [(b"content-length", b"%d" % len(BODY))]), body)
        assert conn.our_state == "ERROR" and not conn.keep_alive
    conn = ready(parser)
    conn.send_apart(Response(200, []), b"")
    with pytest.raises(LocalProtocolError):  # only at the start of a response
        conn.send_apart(Response(200, []), b"")


@pytest.mark.parametrize(("status", "head_request", "http11", "value", "expected"), [
    (200, False, True, b"13", (framing.CONTENT_LENGTH, 13, b"content-length: 13\r\n")),
    (200, False, True, b" 13 ", (framing.CONTENT_LENGTH, 13, b"content-length: 13\r\n")),
    (200, False, True, b"013", (framing.CONTENT_LENGTH, 13, b"content-length: 13\r\n")),
    (200, False, True, None, (framing.CHUNKED, 0, b"transfer-encoding: chunked\r\n")),
    (200, False, False, None, (framing.CLOSE_DELIMITED, 0, b"")),
    (200, True, True, b"13", (framing.NO_BODY, 0, b"content-length: 13\r\n")),
    (304, False, True, b"13", (framing.NO_BODY, 0, b"content-length: 13\r\n")),
    (204, False, True, b"13", (framing.NO_BODY, 0, b"")),
    (204, False, True, None, (framing.NO_BODY, 0, b"")),
])
def test_response_framing_decides_mode_length_and_line(
        status: int, head_request: bool, http11: bool, value: bytes | None,
        expected: tuple[int, int, bytes]) -> None:
    assert framing.response_framing(status, head_request, http11, value) == expected


@pytest.mark.parametrize("value", [b"", b"-1", b"1_0", b"+5", b"0x10", b"1" * 19, b"\xd9\xa1"])
def test_response_framing_refuses_a_bad_content_length(value: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        framing.response_framing(200, False, True, value)

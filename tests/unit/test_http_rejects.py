"""Requests the engine must refuse before they reach an app, with the status to answer.

Each case runs on both parser backends, whole and one byte at a time; both must raise
RemoteProtocolError with the same ``status_hint``.
"""

from __future__ import annotations

import pytest
from http_fixtures import drain, make, merge_data, parser

from prefork.errors import RemoteProtocolError
from prefork.http import Data, EndOfMessage, Limits

__all__ = ["parser"]  # the fixture, imported for pytest

H = b"Host: h\r\n"
CHUNKED_HEAD = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
REJECTS: dict[str, tuple[bytes, int]] = {
    "cl-and-te": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked"
                  b"\r\n\r\n0\r\n\r\n", 400),
    "te-and-cl": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3"
                  b"\r\n\r\n0\r\n\r\n", 400),
    "cl-duplicate-same": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3"
                          b"\r\n\r\nabc", 400),
    "cl-duplicate-differ": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
                            b"Content-Length: 4\r\n\r\nabcd", 400),
    "cl-list": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    "cl-plus": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    "cl-negative": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc", 400),
    "cl-hex": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc", 400),
    "cl-empty": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\nabc", 400),
    "cl-huge": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n",
                400),
    "te-gzip": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    "te-chunked-gzip": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
                        400),
    "te-gzip-chunked": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                        b"0\r\n\r\n", 400),
    "te-twice": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-xchunked": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
                    400),
    "te-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "chunk-size-bad": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-negative": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                            b"-3\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-missing-crlf": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabcX0\r\n\r\n", 400),
    # h11 takes up to 20 hex digits; past 2**64 a 64-bit parser reads another framing.
    "chunk-size-hex-overflow": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                                b"fffffffffffffffff1\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-17-digits": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                             b"10000000000000003\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-20-digits-later-chunk": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked"
                                         b"\r\n\r\n1\r\na\r\nffffffffffffffffffff\r\nabc\r\n0"
                                         b"\r\n\r\n", 400),
    "chunk-ext-control-char": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                               b"3;a=\x01\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-ext-nul": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                      b"3;a\x00b\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-ext-bare-cr": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                          b"3;a\rb\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-ext-cr-before-crlf": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                                 b"\r\n3;a\r\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-ext-del": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                      b"3;a=\x7f\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-last-ext-control-char": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked"
                                    b"\r\n\r\n3\r\nabc\r\n0;a=\x1b\r\n\r\n", 400),
    "chunk-size-trailing-space": (CHUNKED_HEAD + b"5 \r\nhello\r\n0\r\n\r\n", 400),
    "chunk-size-trailing-tab": (CHUNKED_HEAD + b"5\t\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-ext-empty-name": (CHUNKED_HEAD + b"5;\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-ext-space-after-semicolon": (CHUNKED_HEAD + b"5; a=b\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-ext-space-before-semicolon": (CHUNKED_HEAD + b"5 ;a=b\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-ext-ends-in-semicolon": (CHUNKED_HEAD + b"5;a=b;\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-ext-unterminated-quote": (CHUNKED_HEAD + b'5;a="b\r\nhello\r\n0\r\n\r\n', 400),
    "chunk-ext-value-slash": (CHUNKED_HEAD + b"5;a=b/c\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-trailer-bare-lf-end": (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: y\r\n\n", 400),
    "chunk-trailer-bare-lf-empty": (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n\n", 400),
    "chunk-trailer-bare-lf-line": (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n",
                                   400),
    "chunk-trailer-escape": (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: a\x1bb\r\n\r\n", 400),
    "chunk-trailer-del": (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: a\x7fb\r\n\r\n", 400),
    "chunk-trailer-bare-cr": (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", 400),
    "chunk-trailer-obs-fold": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                               b"3\r\nabc\r\n0\r\nX: a\r\n b\r\n\r\n", 400),
    "chunk-trailer-obs-fold-tab": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked"
                                   b"\r\n\r\n3\r\nabc\r\n0\r\nX: a\r\n\tb\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    "obs-fold-tab": (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n", 400),
    "space-before-first-field": (b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    "bad-name-char": (b"GET / HTTP/1.1\r\n" + H + b"X(y): 1\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    "cr-in-value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n", 400),
    "ctl-in-value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n", 400),
    "del-in-value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
    "bare-lf": (b"GET / HTTP/1.1\nHost: h\n\n", 400),
    "bare-lf-in-fields": (b"GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", 400),
    "ctl-in-target": (b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "space-in-target": (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "high-byte-in-target": (b"GET /\xff HTTP/1.1\r\n" + H + b"\r\n", 400),
    "bad-method-char": (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "no-version": (b"GET /\r\n" + H + b"\r\n", 400),
    "bad-version": (b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    "http09": (b"GET / HTTP/0.9\r\n" + H + b"\r\n", 400),
    "missing-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "two-hosts-http10": (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "http12": (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    "http20": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "http35": (b"GET / HTTP/3.5\r\n" + H + b"\r\n", 505),
}  # fmt: skip


def _raise_status(parser: str, pieces: list[bytes], limits: Limits | None = None) -> int:
    conn = make(parser, limits)
    with pytest.raises(RemoteProtocolError) as info:
        for piece in pieces:
            conn.receive_data(piece)
            drain(conn)
    assert conn.their_state == "ERROR"
    status = info.value.status_hint
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    return status


@pytest.mark.parametrize("case", sorted(REJECTS))
def test_rejected(parser: str, case: str) -> None:
    raw, status = REJECTS[case]
    assert _raise_status(parser, [raw]) == status
    assert _raise_status(parser, [bytes([b]) for b in raw]) == status


@pytest.mark.parametrize("case", sorted(c for c in REJECTS if not c.startswith("chunk-")))
def test_rejected_head_never_reaches_app(parser: str, case: str) -> None:
    raw, _status = REJECTS[case]
    conn = make(parser)
    conn.receive_data(raw)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()  # the very first event is the error: no Request was produced


def test_error_response(parser: str) -> None:
    conn = make(parser)
    conn.receive_data(REJECTS["cl-and-te"][0])
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    out = conn.error_response(info.value)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"content-type: text/plain; charset=utf-8\r\n" in head
    assert b"connection: close\r\n" in head
    assert b"content-length: %d\r\n" % len(body) in head
    assert body == b"400 Bad Request\n"
    assert conn.our_state == "MUST_CLOSE"


# --- limits -------------------------------------------------------------------------------------

SMALL = Limits(max_request_line=64, max_headers=4, max_header_size=64, max_body_size=10)


def test_request_line_too_long(parser: str) -> None:
    raw = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert _raise_status(parser, [raw], SMALL) == 414
    assert _raise_status(parser, [raw[:80]], SMALL) == 414  # refused before the line ends


def test_request_line_at_limit_is_fine(parser: str) -> None:
    target = b"/" + b"a" * (64 - len(b"GET  HTTP/1.1") - 1)
    conn = make(parser, SMALL)
    conn.receive_data(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert drain(conn)[0].target == target  # type: ignore[attr-defined]


def test_too_many_headers(parser: str) -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(4)) + b"\r\n"
    )
    assert _raise_status(parser, [raw], SMALL) == 431


def test_header_field_too_long(parser: str) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 100 + b"\r\n\r\n"
    assert _raise_status(parser, [raw], SMALL) == 431


def test_endless_head_is_refused(parser: str) -> None:
    limits = Limits(max_request_line=64, max_headers=4, max_header_size=64)
    pieces = [b"GET / HTTP/1.1\r\nHost: h\r\nX: "] + [b"v" * 100] * 20
    assert _raise_status(parser, pieces, limits) == 431


def test_body_too_large_by_content_length(parser: str) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
    assert _raise_status(parser, [raw], SMALL) == 413


def test_body_too_large_chunked(parser: str) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
    conn = make(parser, SMALL)
    conn.receive_data(raw)
    events = drain(conn)
    assert events[1:] == [Data(b"12345678")]
    conn.receive_data(b"3\r\nabc\r\n0\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        drain(conn)
    assert info.value.status_hint == 413


def test_body_at_limit_is_fine(parser: str) -> None:
    conn = make(parser, SMALL)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789")
    assert drain(conn)[1:] == [Data(b"0123456789"), EndOfMessage()]


# --- chunked framing that must still pass -----------------------------------------------------

CHUNKED_OK = (
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value;q=\"a b\"\r\nhello\r\n"
    b"0000000000000006;x=y;z\r\n world\r\n"
    b"A;empty\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
    b"0;last=1\r\nX-Trailer: t\r\nX-Other: \t2\r\n\r\n"
)
CHUNKED_OK_EVENTS = [
    Data(b"hello world\r\n\r\n\r\n\r\n\r\n"),
    EndOfMessage([(b"x-trailer", b"t"), (b"x-other", b"2")]),
]


def _events(parser: str, pieces: list[bytes]) -> list[object]:
    conn = make(parser)
    events: list[object] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += drain(conn)
    return merge_data(events)


def test_chunked_with_extensions_and_trailers_split_anywhere(parser: str) -> None:
    raw = CHUNKED_OK
    assert _events(parser, [raw])[1:] == CHUNKED_OK_EVENTS
    for cut in range(1, len(raw)):
        assert _events(parser, [raw[:cut], raw[cut:]])[1:] == CHUNKED_OK_EVENTS, cut
    assert _events(parser, [bytes([b]) for b in raw])[1:] == CHUNKED_OK_EVENTS


def test_chunked_body_then_pipelined_request(parser: str) -> None:
    # Bytes after the chunked body's end belong to the next request and are not its framing.
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    nxt = b"GET / HTTP/1.1\r\nHost: h\r\n \x01: 1\r\n\r\n"
    conn = make(parser)
    conn.receive_data(raw + nxt)
    assert drain(conn)[1:] == [Data(b"abc"), EndOfMessage()]


@pytest.mark.parametrize("case", sorted(c for c in REJECTS if c.startswith("chunk-")))
def test_chunked_reject_split_anywhere(parser: str, case: str) -> None:
    raw, status = REJECTS[case]
    for cut in range(1, len(raw)):
        assert _raise_status(parser, [raw[:cut], raw[cut:]]) == status, cut

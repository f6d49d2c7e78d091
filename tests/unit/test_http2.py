"""The sans-I/O HTTP/2 parts: a stream's request head, its responder and the rapid-reset budget."""

from __future__ import annotations

import pytest

from prefork.errors import LocalProtocolError, RemoteProtocolError
from prefork.http.connection import DONE, ERROR, SEND_BODY
from prefork.http.events import Data, EndOfMessage, InformationalResponse, Request, Response
from prefork.http.limits import Limits
from prefork.http2.limits import RESET_WINDOW, Http2Limits, ResetBudget
from prefork.http2.requests import MalformedRequest, malformed_trailers, request_head
from prefork.http2.responder import StreamResponder

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a?b=1"),
        (b":authority", b"example.org:8443")]


def test_request_head_takes_the_authority_as_host_and_joins_cookies() -> None:
    request = request_head([*BASE, (b"host", b"example.org:8443"), (b"cookie", b"a=1"),
                            (b"accept", b"*/*"), (b"cookie", b"b=2")], Limits(), True)
    assert (request.method, request.target, request.http_version) == (b"GET", b"/a?b=1", b"2")
    assert request.headers == [(b"host", b"example.org:8443"), (b"accept", b"*/*"),
                               (b"cookie", b"a=1; b=2")]
    assert request.keep_alive and request.upgrade is None and not request.expect_continue


def test_request_head_notes_forwarding_and_expect_continue() -> None:
    request = request_head([*BASE, (b"x-forwarded-for", b"1.2.3.4"),
                            (b"expect", b"100-continue")], Limits(), False)
    assert request.forwarded and request.expect_continue
    assert not request_head([*BASE, (b"expect", b"100-continue")], Limits(), True).expect_continue


@pytest.mark.parametrize(("fields", "limits", "status"), [
    ([(b":method", b"GET"), (b":path", b"/")], Limits(), 400),  # no authority, no Host
    ([*BASE[:2], (b":path", b"a"), BASE[3]], Limits(), 400),  # not origin-form
    ([(b":method", b"CONNECT"), (b":authority", b"x:1")], Limits(), 405),
    ([(b":method", b"CONNECT"), *BASE[1:], (b":protocol", b"websocket")], Limits(), 405),
    ([*BASE, (b"x", b"y" * 100)], Limits(max_header_size=50), 431),
    ([*BASE, *[(b"x-%d" % n, b"v") for n in range(5)]], Limits(max_headers=4), 431),
    ([*BASE[:2], (b":path", b"/" + b"p" * 100), BASE[3]], Limits(max_request_line=64), 414),
    ([*BASE, (b"content-length", b"11")], Limits(max_body_size=10), 413),
    ([*BASE, (b"content-length", b"1x")], Limits(), 400),
    ([*BASE[:3], (b":authority", b"bad host")], Limits(), 400),
])
def test_request_head_refusals(fields: list[tuple[bytes, bytes]], limits: Limits,
                               status: int) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        request_head(fields, limits, True)
    assert caught.value.status_hint == status


def _responder(method: bytes = b"GET") -> StreamResponder:
    return StreamResponder(Request(method, b"/", b"2", [(b"host", b"x")], True, False, None),
                           Limits(), None, b"prefork")


def test_responder_keeps_the_head_and_returns_the_payload() -> None:
    conn = _responder()
    head = Response(200, [(b"Content-Type", b"text/plain"), (b"Connection", b"keep-alive"),
                          (b"content-length", b"5")])
    assert conn.send(head) == b""
    assert conn.head == [(b":status", b"200"), (b"content-type", b"text/plain"),
                         (b"content-length", b"5"), (b"server", b"prefork")]
    assert conn.our_state == SEND_BODY
    assert conn.send(Data(b"hel")) == b"hel"
    assert conn.send(Data(b"lo")) == b"lo"
    assert conn.send(EndOfMessage([(b"Grpc-Status", b"0")])) == b""
    assert conn.ended and conn.trailers == [(b"grpc-status", b"0")]
    assert conn.our_state == DONE and conn.body_sent == 5 and conn.response is head


def test_responder_holds_the_body_to_its_length() -> None:
    conn = _responder()
    conn.send(Response(200, [(b"content-length", b"2")]))
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"abc"))
    assert conn.our_state == ERROR
    conn = _responder()
    with pytest.raises(LocalProtocolError):
        conn.send_whole(Response(200, [(b"content-length", b"4")]), b"abc")
    assert conn.our_state == ERROR


def test_responder_refuses_a_bad_head_with_nothing_kept() -> None:
    for head in (Response(99, []), Response(200, [(b"bad name", b"v")]),
                 Response(200, [(b"x", b"a\r\nb")]), Response(200, [(b"content-length", b"x")])):
        conn = _responder()
        with pytest.raises(LocalProtocolError):
            conn.send(head)
        assert conn.head is None and conn.our_state != SEND_BODY


def test_responder_sends_no_body_for_head_204_and_304() -> None:
    conn = _responder(b"HEAD")
    assert conn.send_whole(Response(200, [(b"content-length", b"3")]), b"abc") == b""
    assert conn.ended and conn.body_sent == 0
    conn = _responder()
    assert conn.send_whole(Response(204, []), b"") == b""
    conn = _responder(b"HEAD")  # a file answered to HEAD: nothing to send
    conn.send(Response(200, [(b"content-length", b"10")]))
    assert conn.send_body_elsewhere(10) is False
    conn = _responder()
    conn.send(Response(200, [(b"content-length", b"10")]))
    assert conn.send_body_elsewhere(10) is True and conn.body_sent == 10


def test_responder_informational_heads() -> None:
    conn = _responder()
    conn.send(InformationalResponse(103, [(b"Link", b"</s.css>; rel=preload")]))
    assert conn.informational == [[(b":status", b"103"), (b"link", b"</s.css>; rel=preload")]]
    with pytest.raises(LocalProtocolError):
        conn.send(InformationalResponse(101, []))


def test_reset_budget_counts_per_window() -> None:
    budget = ResetBudget(3)
    assert all(budget.spend(1.0) for _ in range(3))
    assert not budget.spend(1.5)
    assert budget.spend(1.0 + RESET_WINDOW)  # a new window
    limits = Http2Limits(max_concurrent_streams=100, initial_window_size=65535)
    assert limits.connection_window == 6553500
    assert Http2Limits(initial_window_size=2**31 - 1).connection_window == 2**31 - 1


@pytest.mark.parametrize("fields", [
    [*BASE, (b"X-Upper", b"1")],
    [*BASE, (b"", b"1")],
    [*BASE, (b"a:b", b"1")],
    [*BASE, (b"a b", b"1")],
    [*BASE, (b"x", b"a\r\nb")],
    [*BASE, (b"x", b"a\0b")],
    [*BASE, (b"x", b" a")],
    [*BASE, (b"x", b"a\t")],
    [*BASE, (b"connection", b"keep-alive")],
    [*BASE, (b"transfer-encoding", b"chunked")],
    [*BASE, (b"te", b"gzip")],
    [*BASE, (b"host", b"elsewhere")],
    [*BASE, (b"host", b"example.org:8443"), (b"host", b"example.org:8443")],
    [*BASE, (b":method", b"POST")],
    [*BASE, (b":status", b"200")],
    [*BASE, (b":foo", b"1")],
    [*BASE[:2], (b"x", b"1"), *BASE[2:]],
    [BASE[0], *BASE[2:]],  # no :scheme
    [*BASE[1:]],  # no :method
    [*BASE[:2], (b":path", b""), BASE[3]],
    [*BASE, (b":protocol", b"websocket"), (b":protocol", b"websocket")],
    [(b":Method", b"GET"), *BASE[1:]],
    [*BASE, (b":protocol", b"websocket")],  # extended CONNECT's field without CONNECT
])
def test_request_head_malformed(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MalformedRequest):
        request_head(fields, Limits(), True)


def test_request_head_allows_te_trailers_and_a_matching_host() -> None:
    request = request_head([*BASE, (b"te", b"trailers"), (b"host", b"example.org:8443"),
                            (b"x", b"")], Limits(), True)
    assert request.headers == [(b"host", b"example.org:8443"), (b"te", b"trailers"), (b"x", b"")]


def test_malformed_trailers() -> None:
    assert not malformed_trailers([(b"grpc-status", b"0")])
    assert malformed_trailers([(b":status", b"200")])
    assert malformed_trailers([(b"Grpc-Status", b"0")])
    assert malformed_trailers([(b"connection", b"close")])

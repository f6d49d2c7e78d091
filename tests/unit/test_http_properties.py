"""Property-based tests of the HTTP engine, with hypothesis, on both parser backends.

* Robustness: random bytes and mutated valid requests, fed in random splits, give events or
  RemoteProtocolError with a 4xx/5xx hint, and nothing else; the error response is well-formed.
* Round trip: a valid request gives the same method, target, fields and body however it is split.
* Pipelining: several valid requests in one stream, split anywhere, give exactly those requests
  in order, each with its own body (no desynchronisation).
* Responses: what ``send()`` writes for random app fields and bodies parses back with an h11
  client to the same status, fields and body.

Tests are parametrised over the parsers rather than using the ``parser`` fixture, so hypothesis
sees no function-scoped fixture. ``deadline=None``: a first example pays for imports and warm-up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefork.errors import RemoteProtocolError
from prefork.http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
    Response,
    ServerConnection,
)
from prefork.http.parsers import PARSERS

pytestmark = pytest.mark.timeout(60)

FIXED_CLOCK = 784111777.0
SETTINGS = settings(deadline=None, max_examples=60, database=None)

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
# Field names the engine reads for framing and persistence; the strategies add those themselves.
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade",
            "keep-alive", "server", "date", "te", "trailer"}
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(lambda n: n.lower() not in RESERVED)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(
    lambda v: v.strip(" "))
fields = st.lists(st.tuples(names, values), max_size=6)
targets = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~/?=&%", max_size=30).map(
    lambda t: "/" + t)
bodies = st.binary(max_size=120)


@dataclass
class Sent:
    """A request as sent: what the engine must report, and its bytes."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes


@st.composite
def requests(draw: st.DrawFn) -> Sent:
    """A valid HTTP/1.1 keep-alive request, framed by Content-Length, chunked or nothing."""
    method = draw(st.sampled_from(METHODS)).encode()
    target = draw(targets).encode()
    headers = [(b"host", b"example.com")]
    headers += [(n.lower().encode(), v.encode()) for n, v in draw(fields)]
    body = draw(bodies)
    framing = draw(st.sampled_from(["length", "chunked"] if body else ["none", "length"]))
    if framing == "length":
        headers.append((b"content-length", b"%d" % len(body)))
        encoded = body
    elif framing == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
        cuts = sorted(set(draw(st.lists(st.integers(1, len(body)), max_size=4))) | {len(body)})
        pieces, start = [], 0
        for end in cuts:
            pieces.append(b"%x\r\n%s\r\n" % (end - start, body[start:end]))
            start = end
        encoded = b"".join(pieces) + b"0\r\n\r\n"
    else:
        encoded = b""
    head = b"%s %s HTTP/1.1\r\n" % (method, target)
    head += b"".join(b"%s: %s\r\n" % pair for pair in headers)
    return Sent(method, target, headers, body, head + b"\r\n" + encoded)


def split(draw: st.DrawFn, raw: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(raw)), max_size=8))))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if b > a]


@dataclass
class Served:
    requests: list[tuple[Request, bytes]]
    error: RemoteProtocolError | None = None


def serve(parser: str, pieces: list[bytes], *, eof: bool = True) -> Served:
    """Feed ``pieces``; answer every complete request at once and go on with the next one."""
    conn = ServerConnection(parser=parser, clock=lambda: FIXED_CLOCK)
    served = Served([])
    current: list[object] = []

    def pump() -> bool:
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return True
            assert event is not PAUSED, "every request is answered before the next is read"
            if isinstance(event, ConnectionClosed):
                return False
            if isinstance(event, Request):
                current[:] = [event, b""]
            elif isinstance(event, Data):
                current[1] += event.data  # type: ignore[operator]  # bytes, set just above
            else:
                assert isinstance(event, EndOfMessage)
                served.requests.append((current[0], current[1]))  # type: ignore[arg-type]
                conn.send_whole(Response(200, []), b"ok")
                if not conn.keep_alive:
                    return False
                conn.start_next_cycle()

    try:
        for piece in [*pieces, b""] if eof else pieces:
            conn.receive_data(piece)
            if not pump():
                break
    except RemoteProtocolError as exc:
        served.error = exc
        assert 400 <= exc.status_hint <= 599, exc.status_hint
        out = conn.error_response(exc)
        if out:
            assert out.startswith(b"HTTP/1.1 %d " % exc.status_hint)
            assert b"\r\nconnection: close\r\n" in out
        assert conn.their_state == "ERROR"
    return served


# --- robustness --------------------------------------------------------------------------

NASTY = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"\x7f", b"\xff",
         b"chunked", b"0\r\n\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
         b"Host: x\r\n", b"\r\n ", b"-1", b"ffffffffffffffffff", b"HTTP/1.0", b"HTTP/2.0",
         b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"]


@st.composite
def mutated(draw: st.DrawFn) -> list[bytes]:
    raw = bytearray(draw(requests()).raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        if action == "insert":
            raw[at:at] = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del raw[at:at + draw(st.integers(1, 8))]
        elif action == "replace" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        else:
            raw[at:at] = raw[at:at + draw(st.integers(1, 16))]
    return split(draw, bytes(raw))


@pytest.mark.parametrize("parser", PARSERS)
@SETTINGS
@given(data=st.data())
def test_random_bytes_never_crash(parser: str, data: st.DataObject) -> None:
    after_line = st.binary(max_size=200).map(lambda rest: b"GET / HTTP/1.1\r\n" + rest)
    raw = data.draw(st.binary(max_size=300) | after_line)
    serve(parser, split(data.draw, raw))
    serve(parser, [bytes([b]) for b in raw])


@pytest.mark.parametrize("parser", PARSERS)
@settings(SETTINGS, max_examples=150)
@given(pieces=mutated())
def test_mutated_requests_never_crash(parser: str, pieces: list[bytes]) -> None:
    served = serve(parser, pieces)
    for request, body in served.requests:
        # Whatever got through was framed: its body matches its own head.
        lengths = [v for n, v in request.headers if n == b"content-length"]
        if lengths:
            assert len(body) == int(lengths[0])


# --- round trip and pipelining ---------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
@SETTINGS
@given(data=st.data())
def test_valid_request_round_trips_in_any_split(parser: str, data: st.DataObject) -> None:
    sent = data.draw(requests())
    for pieces in (split(data.draw, sent.raw), [bytes([b]) for b in sent.raw]):
        served = serve(parser, pieces)
        assert served.error is None
        ((request, body),) = served.requests
        assert (request.method, request.target, request.http_version) == (
            sent.method, sent.target, b"1.1")
        assert request.headers == sent.headers
        assert body == sent.body


@pytest.mark.parametrize("parser", PARSERS)
@SETTINGS
@given(data=st.data())
def test_pipelined_requests_never_desynchronise(parser: str, data: st.DataObject) -> None:
    sent = data.draw(st.lists(requests(), min_size=2, max_size=5))
    served = serve(parser, split(data.draw, b"".join(s.raw for s in sent)))
    assert served.error is None
    got = [(r.method, r.target, r.headers, body) for r, body in served.requests]
    assert got == [(s.method, s.target, s.headers, s.body) for s in sent]


# --- responses ---------------------------------------------------------------------------------

STATUSES = st.sampled_from([200, 201, 204, 206, 301, 304, 400, 404, 418, 500, 503, 599])


@pytest.mark.parametrize("parser", PARSERS)
@SETTINGS
@given(status=STATUSES, headers=fields, body=bodies, method=st.sampled_from(["GET", "HEAD"]),
       version=st.sampled_from(["1.1", "1.0"]), with_length=st.booleans(),
       cuts=st.lists(st.integers(0, 120), max_size=4))
def test_responses_parse_back(parser: str, status: int, headers: list[tuple[str, str]],
                              body: bytes, method: str, version: str, with_length: bool,
                              cuts: list[int]) -> None:
    conn = ServerConnection(parser=parser, clock=lambda: FIXED_CLOCK)
    conn.receive_data(b"%s / HTTP/%s\r\nHost: h\r\n\r\n" % (method.encode(), version.encode()))
    assert isinstance(conn.next_event(), Request)
    assert isinstance(conn.next_event(), EndOfMessage)

    app_fields = [(n.encode(), v.encode()) for n, v in headers]
    if with_length:
        app_fields.append((b"Content-Length", b"%d" % len(body)))
    out = conn.send(Response(status, app_fields))
    points = sorted({c for c in cuts if c <= len(body)} | {0, len(body)})
    for a, b in itertools.pairwise(points):
        out += conn.send(Data(body[a:b]))
    out += conn.send(EndOfMessage())

    client = h11.Connection(h11.CLIENT)
    # h11 only sends HTTP/1.1; the request's version matters to our side, not to its parser.
    client.send(h11.Request(method=method, target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(out)
    if not conn.keep_alive:
        client.receive_data(b"")  # we close: that ends a close-delimited body
    events = []
    while True:
        event = client.next_event()
        if event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
            break
        events.append(event)
    response, *data, end = events
    assert isinstance(response, h11.Response)
    assert isinstance(end, h11.EndOfMessage)
    assert response.status_code == status
    received = b"".join(bytes(d.data) for d in data)
    no_body = method == "HEAD" or status in (204, 304)
    assert received == (b"" if no_body else body)
    got = [(bytes(n), bytes(v)) for n, v in response.headers]
    for name, value in app_fields:
        if name != b"Content-Length":
            assert (name.lower(), value) in got
    lengths = [v for n, v in got if n == b"content-length"]
    if with_length and status != 204:
        assert lengths == [b"%d" % len(body)]
    assert (b"connection", b"close") in got or conn.keep_alive

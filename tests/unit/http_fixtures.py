"""Shared helpers for the HTTP engine's unit tests: the ``parser`` fixture and oracles."""

from __future__ import annotations

from collections.abc import Iterator

import h11
import pytest

from prefork.http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Limits,
    Request,
    Response,
    ServerConnection,
)
from prefork.http.parsers import PARSERS

FIXED_CLOCK = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT (the RFC 9110 example)


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> str:
    """Every HTTP engine test runs once per parser backend."""
    name: str = request.param
    return name


def make(parser: str, limits: Limits | None = None, **kwargs: object) -> ServerConnection:
    kwargs.setdefault("clock", lambda: FIXED_CLOCK)
    return ServerConnection(limits, parser=parser, **kwargs)  # type: ignore[arg-type]


def drain(conn: ServerConnection) -> list[object]:
    """Events until the engine needs data, pauses or reports the close (that one included)."""
    out: list[object] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return out
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out


def merge_data(events: list[object]) -> list[object]:
    """Join consecutive Data events, so that different splits of the input compare equal."""
    out: list[object] = []
    for event in events:
        if isinstance(event, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + event.data)
        elif not (isinstance(event, Data) and not event.data):
            out.append(event)
    return out


def feed_pieces(
    parser: str, pieces: Iterator[bytes] | list[bytes], **kwargs: object
) -> list[object]:
    """Feed ``pieces`` one receive at a time, collecting every event, then merge Data."""
    conn = make(parser, **kwargs)  # type: ignore[arg-type]
    events: list[object] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += drain(conn)
    return merge_data(events)


def respond(conn: ServerConnection, status: int = 200, body: bytes = b"ok",
            headers: list[tuple[bytes, bytes]] | None = None) -> bytes:  # fmt: skip
    """Send a whole response with a Content-Length and return its bytes."""
    fields = headers if headers is not None else [(b"content-length", b"%d" % len(body))]
    return conn.send(Response(status, fields)) + conn.send(Data(body)) + conn.send(EndOfMessage())


def client_read(raw: bytes, method: str = "GET") -> list[object]:
    """Parse server output with an h11 client: the well-formedness oracle.

    Returns the h11 events up to the end of the first response (Data merged).
    """
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    events: list[object] = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(b"")
            continue
        if isinstance(event, h11.Data) and events and isinstance(events[-1], h11.Data):
            events[-1] = h11.Data(data=bytes(events[-1].data) + bytes(event.data))
            continue
        events.append(event)
        if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return events


def request_of(events: list[object]) -> Request:
    first = events[0]
    assert isinstance(first, Request)
    return first

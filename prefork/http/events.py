"""The vocabulary between the HTTP engine and the layers above it.

Request-side events come out of :meth:`ServerConnection.next_event`; response-side events go
into :meth:`ServerConnection.send`. All are dataclasses with slots (the shape of h11's events),
plus two flow-control sentinels. This module does no I/O.

Immutable by convention, not all frozen: :class:`Request`, :class:`Data` and :class:`Response`
are made on every request, and a frozen dataclass's ``__init__`` stores each field through
``object.__setattr__``: 1.9 µs for a ``Request`` against 0.4 µs for the same class unfrozen
(``bench/http_engine.py`` measures the whole cycle). Nothing mutates an event after it is made;
make a new one instead. Events are compared by value and are not hashable.

The three made per request write their ``__init__`` out (``init=False``; the dataclass still
gives comparison, repr and ``dataclasses.replace``): in the compiled build a dataclass's
generated ``__init__`` runs interpreted, 2.7k instructions for a ``Request`` against a few
hundred for a compiled one.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "InformationalResponse",
    "Request",
    "Response",
    "Sentinel",
]


@dataclass(slots=True, init=False)
class Request:
    """A request head.

    ``headers`` names are lower-cased and values stripped of surrounding whitespace, in received
    order. ``keep_alive`` is what the request asks for; ``expect_continue`` is true only for an
    HTTP/1.1 request that sent ``Expect: 100-continue`` *and* has a body. ``upgrade`` is the
    lower-cased ``Upgrade`` value when ``Connection`` carries the ``upgrade`` token, else None.
    ``forwarded`` says a proxy's forwarding field is among the headers (``Forwarded`` or
    ``X-Forwarded-For``/``-Proto``/``-Host``), so that a request without one skips their
    resolution.
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    expect_continue: bool
    upgrade: bytes | None
    forwarded: bool = False

    def __init__(self, method: bytes, target: bytes, http_version: bytes,
                 headers: list[tuple[bytes, bytes]], keep_alive: bool, expect_continue: bool,
                 upgrade: bytes | None, forwarded: bool = False) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade
        self.forwarded = forwarded


@dataclass(slots=True, init=False)
class Data:
    """A piece of a message body (request body out of the engine, response body into it)."""

    data: bytes

    def __init__(self, data: bytes) -> None:
        self.data = data


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The end of a message body, with trailer fields (only chunked bodies carry any)."""

    trailers: Sequence[tuple[bytes, bytes]] = ()


@dataclass(slots=True, init=False)
class Response:
    """A final response head (status 200-999)."""

    status_code: int
    headers: Sequence[tuple[bytes, bytes]]
    reason: bytes = b""

    def __init__(self, status_code: int, headers: Sequence[tuple[bytes, bytes]],
                 reason: bytes = b"") -> None:
        self.status_code = status_code
        self.headers = headers
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InformationalResponse:
    """A 1xx response head, such as ``100 Continue``; sent before the final :class:`Response`."""

    status_code: int
    headers: Sequence[tuple[bytes, bytes]] = ()
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its sending side; see :attr:`ServerConnection.their_state` for whether a
    request was cut short."""


class Sentinel(enum.Enum):
    """Flow-control answers of ``next_event`` that are not events."""

    NEED_DATA = "NEED_DATA"  # feed more bytes with receive_data()
    PAUSED = "PAUSED"  # the next request is here; finish this cycle and call start_next_cycle()

    def __repr__(self) -> str:
        return self.value

    def __str__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA
PAUSED: Final = Sentinel.PAUSED

"""What a parser backend reports to (:class:`Sink`, the connection) and what it offers
(:class:`Tokenizer`), in a module of their own so that the backends, which
``prefork.http.parsers`` imports on first use, import nothing from it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Sink", "Tokenizer"]


class Sink(Protocol):
    """What a backend reports to. Any method may raise RemoteProtocolError to stop parsing."""

    def on_head(
        self, method: bytes, target: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """A request head (names lower-cased, values stripped). Returns True when the request
        switches protocols: the message then ends at its head, the backend stops and hands every
        byte after the head to :meth:`on_unparsed`."""

    def on_data(self, data: bytes) -> None:
        """A piece of the request body."""

    def on_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """The end of the request body (trailers only after a chunked body)."""

    def on_unparsed(self, rest: bytes) -> None:
        """Bytes the backend stopped before; they are given back to it after :meth:`reset`."""


class Tokenizer(Protocol):
    def feed(self, data: bytes) -> None:
        """Tokenise ``data``; raises RemoteProtocolError on bytes that break HTTP/1.1."""

    def reset(self) -> None:
        """Get ready for the next request after the backend stopped (see ``on_unparsed``)."""

    @property
    def in_head(self) -> bool:
        """True while part of a request head has been received but not the whole of it."""

    def recycle(self) -> bool:
        """Get ready to read another connection's first request, as if new, when this one
        stopped between two messages; False (and nothing changes) when it did not, or when the
        backend cannot start over cheaply: then :meth:`release` it."""

    def release(self) -> None:
        """The connection is gone: drop whatever refers back to this tokenizer (httptools'
        parser holds its callbacks), so the connection's objects are freed by reference
        counting at once instead of by the cycle collector later. Nothing is fed after it."""

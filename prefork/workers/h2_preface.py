"""The first bytes of a cleartext connection when HTTP/2 by prior knowledge is on
(``--http2``, ``--http2-cleartext prior-knowledge`` or ``both``).

``PrefaceReader`` is the connection's ``Session`` (``prefork.workers.contract``) until it can
tell: the HTTP/2 preface hands the connection to an HTTP/2 session, anything else to the
HTTP/1.1 engine. It takes the slot the PROXY header reader uses, so only a connection's first
bytes pay for it, no request does. ``PrefaceTarget`` is what it may use of the connection, so
this module imports no connection.
"""

from __future__ import annotations

from typing import Final, Protocol

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class PrefaceTarget(Protocol):
    """What the preface reader may use of its connection."""

    def preface_read(self, http2: bool, data: bytes) -> None: ...

    def proxy_header_partial(self) -> None: ...

    def close(self) -> None: ...

    def close_when_idle(self) -> None: ...


class PrefaceReader:
    """Reads a connection's first bytes until they are, or cannot be, the preface."""

    __slots__ = ("buffer", "protocol")

    def __init__(self, protocol: PrefaceTarget) -> None:
        self.protocol = protocol
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer = self.buffer + data
        if len(buffer) < len(PREFACE) and PREFACE.startswith(buffer):
            self.protocol.proxy_header_partial()  # timed as a request head
            return
        self.protocol.preface_read(buffer.startswith(PREFACE), buffer)

    def eof_received(self) -> None:
        self.protocol.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.buffer = b""

    def shutdown(self) -> None:
        self.protocol.close_when_idle()

    def writing_resumed(self) -> None:
        """Nothing is written before the preface is read."""

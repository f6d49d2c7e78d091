"""The first bytes of a connection when ``--proxy-protocol`` is on, before the engine sees any.

``ProxyHeaderReader`` is the connection's ``Session`` (``prefork.workers.contract``) until the
PROXY header is read or refused: it takes the slot a WebSocket session takes after an upgrade,
so no request pays a check for it. ``HeaderTarget`` is what it may use of the connection
(``prefork.workers.protocol.HttpProtocol``), so this module imports no connection.

Rule: it parses (``prefork.workers.proxy_protocol``) and hands the outcome to the connection;
it writes nothing and keeps no clock, the connection answers and times it.
"""

from __future__ import annotations

from typing import Protocol

from prefork.errors import RemoteProtocolError
from prefork.workers.proxy_protocol import NEED_MORE, ProxyHeader, starts_like_header
from prefork.workers.proxy_protocol import parse as parse_proxy_header


class HeaderTarget(Protocol):
    """What the reader may use of its connection."""

    @property
    def closed(self) -> bool: ...

    def proxy_header_read(self, source: tuple[str, int] | None, rest: bytes) -> None: ...

    def proxy_header_refused(self, exc: RemoteProtocolError) -> None: ...

    def proxy_header_partial(self) -> None: ...

    def close(self) -> None: ...

    def close_when_idle(self) -> None: ...


class ProxyHeaderReader:
    """The first bytes of a connection when ``--proxy-protocol`` is on, before the engine sees
    any. From a peer in ``--proxy-allow-ips`` a PROXY header (v1 or v2) is required: its source
    address becomes the connection's peer and client (so ``--forwarded-allow-ips``, the app's
    client and the access log all follow it), and the bytes after it go to the engine. From any
    other peer a PROXY header is refused (it could claim any address) and anything else is
    HTTP. Either way a 400 answers what is refused, and the connection closes."""

    __slots__ = ("buffer", "protocol", "required")

    def __init__(self, protocol: HeaderTarget, required: bool) -> None:
        self.protocol = protocol
        self.required = required
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol.closed:
            return  # timed out waiting for the rest of the header: lingering
        buffer = self.buffer = self.buffer + data
        header: ProxyHeader | None = None
        try:
            if self.required:
                parsed = parse_proxy_header(buffer)
                if parsed is NEED_MORE:
                    self._wait()
                    return
                header, used = parsed
            else:
                looks = starts_like_header(buffer)
                if looks is None:
                    self._wait()
                    return
                if looks:
                    raise RemoteProtocolError("PROXY header from a peer not in --proxy-allow-ips")
                used = 0
        except RemoteProtocolError as exc:
            protocol.proxy_header_refused(exc)
            return
        # a unix path is no client address
        source = header.source if header is not None and header.family != "unix" else None
        protocol.proxy_header_read(source, buffer[used:])

    def _wait(self) -> None:
        """A partial header: from now on it must complete within the request head's time."""
        self.protocol.proxy_header_partial()

    def eof_received(self) -> None:
        self.protocol.close()

    def connection_lost(self, _exc: Exception | None) -> None:
        self.buffer = b""

    def shutdown(self) -> None:
        """Draining: like a connection whose first request has not arrived yet."""
        self.protocol.close_when_idle()

    def writing_resumed(self) -> None:
        """Nothing to do: the header reader writes nothing until the engine answers."""

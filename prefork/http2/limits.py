"""An HTTP/2 connection's settings and the bounds it keeps against abusive clients.

:func:`new_connection` makes the server side of an ``h2`` connection with the worker's
settings (``--http2-*``) announced in its first SETTINGS frame and enforced by ``h2`` itself
where it can: the frame size, the decoded header list size (an HPACK bomb ends the connection
with ENHANCE_YOUR_CALM; a header block split over more than 64 CONTINUATION frames is refused
by ``h2`` before it is decoded) and the concurrent streams, which the session refuses too,
since ``h2`` ends the whole connection with PROTOCOL_ERROR for a stream past the limit, where
RFC 9113 §5.1.2 makes it an error of that stream alone (:class:`ServerH2Connection`).

:class:`ResetBudget` bounds rapid reset (CVE-2023-44487): a client that opens streams and
cancels them before their response, many times within a window, makes the server start work
it never finishes at a rate no concurrency limit sees. Past the budget the connection ends
with GOAWAY ENHANCE_YOUR_CALM.

The clock is injected: this module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes

# The rapid-reset window, in seconds, and the streams a client may cancel within it beyond
# twice its concurrency limit (a browser cancelling its requests on a page change is fine).
RESET_WINDOW: Final = 10.0
RESET_ALLOWANCE: Final = 200
# The connection-level receive window: each stream's window times the concurrency limit, so
# that a stream whose app reads slowly (its window held full) never blocks the others; at
# most the protocol's largest window.
MAX_WINDOW: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Http2Limits:
    """The ``--http2-*`` settings, read once per worker."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536

    @property
    def connection_window(self) -> int:
        return min(MAX_WINDOW, self.initial_window_size * self.max_concurrent_streams)

    @property
    def reset_allowance(self) -> int:
        return RESET_ALLOWANCE + 2 * self.max_concurrent_streams


class ServerH2Connection(H2Connection):
    """``h2``'s connection without its own concurrent-stream check, which ends the connection;
    the session refuses a stream past the limit with REFUSED_STREAM instead."""

    @property
    def open_inbound_streams(self) -> int:
        # h2 also forgets its closed streams in this property: that still happens
        super().open_inbound_streams  # noqa: B018
        return 0


def new_connection(limits: Http2Limits) -> H2Connection:
    """The server side of one connection, its SETTINGS not sent yet (see
    :func:`start_connection`)."""
    config = H2Configuration(client_side=False, header_encoding=None,
                             validate_inbound_headers=True, normalize_inbound_headers=True,
                             validate_outbound_headers=False, normalize_outbound_headers=False)
    connection = ServerH2Connection(config=config)
    connection.local_settings = type(connection.local_settings)(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
            SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            SettingCodes.ENABLE_PUSH: 0,
        },
    )
    # The decoder's limit applies at once, not only once the client acknowledged it.
    connection.decoder.max_header_list_size = limits.max_header_list_size
    connection.max_inbound_frame_size = limits.max_frame_size
    return connection


def start_connection(connection: H2Connection, limits: Http2Limits) -> None:
    """Queue the server's preface (SETTINGS) and the connection window's increase."""
    connection.initiate_connection()
    increase = limits.connection_window - 65535
    if increase > 0:
        connection.increment_flow_control_window(increase)


class ResetBudget:
    """Streams the client cancelled before their response, counted per ``RESET_WINDOW``."""

    __slots__ = ("allowance", "count", "window_start")

    def __init__(self, allowance: int) -> None:
        self.allowance = allowance
        self.count = 0
        self.window_start = 0.0

    def spend(self, now: float) -> bool:
        """Count one cancelled stream at ``now``; False once the budget is exceeded."""
        if now - self.window_start >= RESET_WINDOW:
            self.window_start = now
            self.count = 0
        self.count += 1
        return self.count <= self.allowance

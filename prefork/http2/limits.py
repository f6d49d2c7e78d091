"""An HTTP/2 connection's settings (``--http2-*``, :class:`Http2Limits`) and the bounds it
keeps against rapid reset and against floods of frames that ask for nothing.

:class:`ResetBudget` bounds rapid reset (CVE-2023-44487): a client that opens streams and
cancels them before their response, many times within a window, makes the server start work
it never finishes at a rate no concurrency limit sees. Past the budget the connection ends
with GOAWAY ENHANCE_YOUR_CALM.

:class:`IdleFrameBudget` bounds the frames that make no response: PING, SETTINGS, PRIORITY,
empty DATA, WINDOW_UPDATE while nothing waits for the window, and frames of unknown types
(CVE-2019-9512, -9513, -9515, -9518 and their kind). Each
costs the worker a few microseconds of ``h2``'s time and most need no answer, so nothing waits
to be written that would stop the reading; a client sending them without end would have the
worker's CPU. Past ``IDLE_FRAME_ALLOWANCE`` in a window the connection ends with GOAWAY
ENHANCE_YOUR_CALM.

The clock is injected: this module does no I/O, and imports no ``h2`` (a worker without
``--http2`` never loads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The rapid-reset window, in seconds, and the streams a client may cancel within it beyond
# twice its concurrency limit (a browser cancelling its requests on a page change is fine).
RESET_WINDOW: Final = 10.0
RESET_ALLOWANCE: Final = 200
# Frames that ask for nothing, per RESET_WINDOW: clients send a handful (a PING for keep-alive,
# SETTINGS at the start, PRIORITY for a page's streams); a flood sends tens of thousands a
# second.
IDLE_FRAME_ALLOWANCE: Final = 1000
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


class ResetBudget:
    """Streams the client cancelled before their response, counted per ``RESET_WINDOW``
    (and, as :class:`IdleFrameBudget`, frames that ask for nothing)."""

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


class IdleFrameBudget(ResetBudget):
    """Frames that ask for nothing (see the module docstring), counted per ``RESET_WINDOW``
    as cancelled streams are."""

    def __init__(self) -> None:
        super().__init__(IDLE_FRAME_ALLOWANCE)

"""One HTTP/2 stream as the ``Connection`` its request cycle answers on.

The cycles (ASGI, WSGI, the health answer) run over a stream as over an HTTP/1.1 connection:
they turn response events into bytes through ``conn`` (here a
``prefork.http2.responder.StreamResponder``, which keeps the head, the end and the trailers
aside and gives back the body's payload) and hand them to :meth:`H2Stream.write`, which queues
them; the session (``prefork.workers.h2_session``) turns what is queued into frames as far as
the stream's and the connection's send windows allow.

Flow control, both ways:

* A send waits (``write_paused``, :meth:`drain`) while more than ``STREAM_BUFFER`` bytes wait
  for the client's window, or while the transport is above its high-water mark: a fast app
  never buffers past the window plus one message and that bound, and a stream whose client
  reads slowly waits alone.
* Request body bytes are acknowledged (WINDOW_UPDATE) at once while the app holds at most
  ``max_buffer`` bytes of them, and otherwise only once it takes them (``body_consumed``), so
  a client can never have more than its window outstanding on a stream the app does not read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO, TYPE_CHECKING, Final, Protocol

from prefork.http.events import Request
from prefork.http2.responder import StreamResponder
from prefork.workers import observation
from prefork.workers.contract import RESPONSE_COMPLETE, Connection, Cycle

if TYPE_CHECKING:
    from prefork.workers.serving import ServingState

log = logging.getLogger("prefork.error")

# Response bytes a stream may have queued beyond its send window before the app's send waits.
STREAM_BUFFER: Final = 64 * 1024
# A file body is read and queued in pieces of this size (no sendfile over HTTP/2: the bytes
# are framed and flow-controlled).
FILE_PIECE: Final = 64 * 1024


class Paused(Protocol):
    @property
    def write_paused(self) -> bool: ...


class StreamOwner(Protocol):
    """What a stream may use of its session (``prefork.workers.h2_session.Http2Session``)."""

    state: ServingState
    loop: asyncio.AbstractEventLoop
    server: tuple[str, int | None] | None

    @property
    def protocol(self) -> Paused: ...

    def flush(self, stream: H2Stream) -> None: ...

    def acknowledge(self, stream: H2Stream, size: int) -> None: ...

    def refuse_body(self, stream: H2Stream, status: int, reason: str) -> None: ...

    def send_continue(self, stream: H2Stream) -> None: ...

    def stream_finished(self, stream: H2Stream) -> None: ...

    def reset(self, stream: H2Stream, code: int) -> None: ...


class H2Stream(Connection):
    """One stream of an HTTP/2 connection; see the module docstring."""

    def __init__(self, session: StreamOwner, stream_id: int, request: Request,
                 client: tuple[str, int] | None, scheme: str) -> None:
        state = session.state
        self.session = session
        self.state: ServingState = state
        self.stream_id = stream_id
        self.request = request
        self.loop = session.loop
        self.client = client
        self.server = session.server
        self.scheme = scheme
        self.responder = StreamResponder(
            request, state.limits, state.date_cache if state.config.date_header else None,
            state.server_header)
        self.conn = self.responder  # what the cycle sends through, typed as the engine
        self.closed = False  # reset, finished or the connection is gone: nothing more is sent
        self.write_paused = False
        self.reading_paused = False  # body bytes wait to be acknowledged until the app reads
        self.cycle: Cycle | None = None
        self.pending: list[bytes] = []  # body bytes waiting for the send window
        self.pending_size = 0
        self.pending_start = 0  # where the first pending piece's unsent bytes start
        self.end_sent = False
        self.complete = False  # response_complete was called
        self.request_ended = False
        self.unacked = 0  # flow-controlled bytes received and not acknowledged yet
        self.received = 0  # body bytes received, for --limit-request-body
        self.stalled_since = 0.0  # when the send window last blocked queued bytes
        self.body_due = 0.0  # when the next request body bytes are due (--body-timeout)
        self.waiter: asyncio.Future[None] | None = None
        self.head_at = 0.0
        self.observation: observation.Observation | None = None

    # -- called by the session ------------------------------------------------------------------

    def data_arrived(self, data: bytes, flow_controlled: int) -> None:
        self.received += len(data)
        self.body_due = self.loop.time() + self.state.limits.body_timeout
        limit = self.state.limits.max_body_size
        cycle = self.cycle
        if cycle is None or self.closed:
            self.session.acknowledge(self, flow_controlled)
            return
        if limit is not None and self.received > limit:
            self.session.refuse_body(self, 413, "request body too large")
            return
        cycle.body_received(data)
        if cycle.body_size <= self.state.limits.max_buffer:
            self.session.acknowledge(self, flow_controlled)
        else:
            self.unacked += flow_controlled
            self.reading_paused = True

    def ended_by_client(self) -> None:
        self.request_ended = True
        cycle = self.cycle
        if cycle is not None:
            cycle.request_complete()

    def gone(self) -> None:
        """The client reset the stream, or the connection is gone."""
        if self.closed and self.cycle is None:
            return
        self.closed = True
        self.pending = []
        self.pending_size = 0
        self.pending_start = 0
        cycle = self.cycle
        if cycle is not None:
            cycle.client_gone()
        self._wake()

    def update_paused(self) -> None:
        """Whether the app's sends wait now; wakes one that waited when they need not."""
        paused = not self.closed and (self.pending_size > STREAM_BUFFER
                                      or self.session.protocol.write_paused)
        self.write_paused = paused
        if not paused:
            self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- Connection: called by the cycle --------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if data:
            self.pending.append(data)
            self.pending_size += len(data)
        self.session.flush(self)

    def write_apart(self, head: bytes, body: bytes) -> None:
        self.write(head + body if head else body)

    async def drain(self) -> None:
        while self.write_paused and not self.closed:
            waiter = self.waiter
            if waiter is None or waiter.done():
                waiter = self.waiter = self.loop.create_future()
            await waiter

    async def send_file(self, file: IO[bytes], count: int, offset: int = 0) -> int:
        sent = 0
        file.seek(offset)
        while sent < count and not self.closed:
            piece = file.read(min(FILE_PIECE, count - sent))
            if not piece:
                break
            sent += len(piece)
            self.write(piece)
            if self.write_paused:
                await self.drain()
        return sent

    def send_continue(self) -> None:
        if self.responder.client_is_waiting_for_100_continue and not self.closed:
            self.session.send_continue(self)

    def body_consumed(self, size: int) -> None:
        if self.reading_paused:
            self.reading_paused = False
            unacked = self.unacked
            self.unacked = 0
            if unacked and not self.closed:
                self.session.acknowledge(self, unacked)

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.body_consumed(0)

    def response_complete(self) -> None:
        if self.complete:
            return
        self.complete = True
        state = self.state
        if state.metrics is not None:
            state.metrics.response_complete(self)
        if self.observation is not None:
            observation.end(self, self.observation, self.cycle)
            self.observation = None
        counters = state.counters
        counters.requests += 1
        if state.counting_requests:
            state.on_request_done(counters.requests)
        self.cycle = None
        if self.end_sent:
            self.session.stream_finished(self)

    def cycle_finished(self, cycle: Cycle) -> None:
        state = self.state
        state.counters.in_flight -= 1
        task = cycle.task
        if task is not None:
            state.tasks.discard(task)
        if cycle.response_state != RESPONSE_COMPLETE and not self.closed:
            self.abort()

    def session_finished(self) -> None:
        """No session runs over a stream (WebSocket over HTTP/2 is not served)."""

    def close(self) -> None:
        if not self.closed:
            self.session.reset(self, 0x8)  # CANCEL

    def abort(self) -> None:
        if not self.closed:
            self.session.reset(self, 0x2)  # INTERNAL_ERROR
        self.cycle = None

"""An HTTP/2 connection: the ``Session`` that takes a connection's bytes from the HTTP/1.1
engine once it speaks HTTP/2 (``prefork.workers.contract``).

The connection (``prefork.workers.protocol.HttpProtocol``) hands itself over when TLS chose
``h2`` by ALPN, when the first bytes are the HTTP/2 preface (``prefork.workers.h2_preface``),
or after answering ``Upgrade: h2c`` with 101. From then on this session feeds the connection's
HTTP/2 engine (``prefork.http2.engines``: prefork's own, or python-hyper's ``h2``), makes an
``H2Stream`` (``prefork.workers.h2_stream``) per request and starts its cycle through the
worker's ``Serving`` as the connection would, and writes what the engine frames through the
connection, whose held writes, send timeout and keep-alive deadline it keeps using.

Bounds: concurrent streams (``--h2-max-concurrent-streams``, refused with REFUSED_STREAM),
streams cancelled by the client (``prefork.http2.limits.ResetBudget``: GOAWAY
ENHANCE_YOUR_CALM), frames that ask for nothing (``prefork.http2.limits.IdleFrameBudget``, the
same), the header list (the engine), and what the client does not read: while the
transport is above its high-water mark no more is read from the client, so PING and SETTINGS
acknowledgements cannot pile up. A stream whose bytes the client's window has blocked for
``--send-timeout`` is reset, one whose body stopped coming for ``--body-timeout`` answered 408
(one timer per connection, armed only while a stream has such a deadline); the connection's
keep-alive deadline runs while no stream is open.

Drain: GOAWAY naming the last stream taken (the engine's ``announce_goaway``), the open
streams finish, then the connection closes with a last GOAWAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from prefork.errors import RemoteProtocolError
from prefork.http.events import Request
from prefork.http.headers import REASONS
from prefork.http2 import errors
from prefork.http2.errors import ProtocolError, StreamClosedError
from prefork.http2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from prefork.http2.limits import IdleFrameBudget, ResetBudget
from prefork.http2.requests import (
    HTTP2_VERSION,
    MalformedRequest,
    malformed_trailers,
    request_head,
)
from prefork.proxy import resolve as resolve_forwarded
from prefork.workers import observation
from prefork.workers.contract import RESPONSE_NOT_STARTED, Cycle
from prefork.workers.h2_stream import H2Stream
from prefork.workers.health import HealthCycle, is_health_request

if TYPE_CHECKING:
    from prefork.workers.serving import ServingState

log = logging.getLogger("prefork.error")

# Streams opened from one read of the client's bytes after which their answers are written,
# not held for the end of the loop's pass: a client that sends many requests at once (h2load
# -m 100, a browser's page) reads the first answers while the rest are being served.
EARLY_WRITE_STREAMS: Final = 16

# The HTTP/1.1 fields of an h2c upgrade request that belong to the upgrade, not the request.
_UPGRADE_FIELDS: Final = frozenset({b"connection", b"upgrade", b"http2-settings"})


class Carrier(Protocol):
    """What the session may use of the connection it took over."""

    state: ServingState
    loop: asyncio.AbstractEventLoop
    server: tuple[str, int | None] | None
    peer: tuple[str, int] | None
    peer_scheme: str
    tls: dict[str, Any] | None
    closed: bool
    write_paused: bool
    reading_paused: bool

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def session_idle(self) -> None: ...

    def session_busy(self) -> None: ...

    def release_held(self) -> None: ...

    def close_when_idle(self) -> None: ...


class Http2Session:
    """One HTTP/2 connection; see the module docstring."""

    def __init__(self, protocol: Carrier) -> None:
        state = protocol.state
        limits = state.http2
        assert limits is not None
        self.protocol = protocol
        self.state = state
        self.loop = protocol.loop
        self.server = protocol.server
        self.tls = protocol.tls
        self.limits = limits
        engine = state.h2_engine
        assert engine is not None
        self.engine = engine(limits)
        self.streams: dict[int, H2Stream] = {}
        self.last_stream_id = 0
        self.goaway_sent = False
        self.ended = False
        self.resets = ResetBudget(limits.reset_allowance)
        self.idle_frames = IdleFrameBudget()
        self.timer: asyncio.TimerHandle | None = None  # see _watch
        self.check_interval = max(0.05, min(state.send_timeout, state.limits.body_timeout) / 4)
        self.peer_trusted: bool | None = None

    # -- starting -------------------------------------------------------------------------------

    def start(self, data: bytes = b"") -> None:
        """Begin with the server's SETTINGS; ``data``: what the client sent already."""
        self.engine.initiate_connection()
        self._out()
        self.protocol.session_idle()
        if data:
            self.data_received(data)

    def start_upgraded(self, request: Request, settings: bytes, data: bytes) -> None:
        """After ``101 Switching Protocols``: the upgrade request is stream 1."""
        engine = self.engine
        try:
            engine.initiate_upgrade_connection(settings)
        except ProtocolError:  # a malformed HTTP2-Settings: the connection cannot go on
            log.debug("bad HTTP2-Settings from %s", self.protocol.peer)
            self.protocol.abort()
            return
        self._out()
        headers = [(name, value) for name, value in request.headers
                   if name not in _UPGRADE_FIELDS]
        request = dataclasses.replace(request, http_version=HTTP2_VERSION, headers=headers,
                                      keep_alive=True, upgrade=None, expect_continue=False)
        self.last_stream_id = 1
        self._open(1, request, True)
        if data:
            self.data_received(data)

    # -- Session --------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        try:
            events = self.engine.receive_data(data)
        except ProtocolError as exc:  # the engine queued the GOAWAY that says why
            log.debug("HTTP/2 protocol error from %s: %s", self.protocol.peer, exc)
            self._end_connection()
            return
        except Exception as exc:  # anything else raised on bad input: no GOAWAY to send
            log.debug("HTTP/2 input from %s refused: %r", self.protocol.peer, exc)
            self._lost()
            self.protocol.abort()
            return
        opened = 0
        for event in events:
            if isinstance(event, DataReceived):
                if not event.data and not event.stream_ended:
                    self._idle_frame()
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.data_arrived(event.data, event.flow_controlled_length)
                elif event.flow_controlled_length:
                    self._acknowledge_closed(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, RequestReceived):
                self._request(event.stream_id, event.headers, event.stream_ended)
                opened += 1
                if opened == EARLY_WRITE_STREAMS:
                    # what the streams answered so far goes out now, while the rest are
                    # served: the client reads it and sends its next requests meanwhile
                    opened = 0
                    self.protocol.release_held()
            elif isinstance(event, StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.ended_by_client()
            elif isinstance(event, WindowUpdated):
                if not self._window_opened():  # an update nothing waited for
                    self._idle_frame()
            elif isinstance(event, RemoteSettingsChanged):
                self._window_opened()
                self._idle_frame()
            elif isinstance(event, StreamReset):
                self._reset_by_client(event.stream_id)
            elif isinstance(event, ConnectionTerminated):
                self._terminated(event.error_code or 0)
            elif isinstance(event, TrailersReceived):
                if malformed_trailers(event.headers):
                    self._malformed(event.stream_id)
            elif isinstance(event, PingReceived | PingAckReceived | PriorityUpdated
                            | UnknownFrameReceived):
                self._idle_frame()
            if self.ended:
                return
        engine = self.engine
        silent = engine.silent_resets
        if silent:  # resets of streams already closed: no event, yet as costly as any frame
            engine.silent_resets = 0
            for _ in range(silent):
                self._idle_frame()
                if self.ended:
                    return
        self._out()
        protocol = self.protocol
        if protocol.write_paused and not protocol.reading_paused:
            # the client does not read what we send (PING and SETTINGS acknowledgements
            # included): read no more from it until it does
            protocol.pause_reading()

    def eof_received(self) -> None:
        self._lost()
        self.protocol.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def shutdown(self) -> None:
        """Drain: GOAWAY naming the last stream taken; the open ones finish."""
        if self.goaway_sent or self.ended:
            return
        self.goaway_sent = True
        if not self.streams:
            self._finish()  # nothing in flight: one GOAWAY, the last, and the close
            return
        self.engine.announce_goaway(self.last_stream_id)
        self._out()

    def writing_resumed(self) -> None:
        protocol = self.protocol
        if protocol.reading_paused and not self.ended:
            protocol.resume_reading()
        for stream in list(self.streams.values()):
            stream.update_paused()

    # -- streams --------------------------------------------------------------------------------

    def _request(self, stream_id: int, fields: Any, end_stream: bool) -> None:
        self.last_stream_id = max(self.last_stream_id, stream_id)
        state = self.state
        if self.goaway_sent:
            self._refuse_stream(stream_id, errors.REFUSED_STREAM)
            return
        if len(self.streams) >= self.limits.max_concurrent_streams:
            self._refuse_stream(stream_id, errors.REFUSED_STREAM)
            return
        try:
            request = request_head(fields, state.limits, end_stream)
        except MalformedRequest as malformed:
            log.debug("stream %d from %s: %s", stream_id, self.protocol.peer, malformed)
            self._refuse_stream(stream_id, errors.PROTOCOL_ERROR)
            return
        except RemoteProtocolError as exc:
            self._answer_error(stream_id, exc.status_hint, end_stream)
            return
        if state.counters.in_flight >= state.max_in_flight:
            self._answer_error(stream_id, 503, end_stream)
            return
        self._open(stream_id, request, end_stream)

    def _open(self, stream_id: int, request: Request, end_stream: bool) -> None:
        state = self.state
        request, client, scheme = self._forwarded(request)
        stream = H2Stream(self, stream_id, request, client, scheme)
        if not self.streams:
            self.protocol.session_busy()
        self.streams[stream_id] = stream
        if state.metrics is not None:
            stream.head_at = time.perf_counter()
        cycle: Cycle
        if state.health_path is not None and is_health_request(request.target,
                                                               state.health_path):
            cycle = HealthCycle(stream, request, state.draining or state.unready)
        else:
            if state.observing:
                stream.observation = observation.begin(stream, request)
            cycle = state.serving.cycle(stream, request)
        stream.cycle = cycle
        if end_stream:
            stream.request_ended = True
            cycle.request_complete()
        else:
            stream.body_due = self.loop.time() + state.limits.body_timeout
            self._watch()
        state.counters.in_flight += 1
        coro = cycle.begin(state.app)
        if coro is not None:
            task = state.start_task(coro)
            if task is not None:
                cycle.task = task
                state.tasks.add(task)
        if state.closing_connections:
            self.shutdown()

    def _forwarded(self, request: Request) -> tuple[Request, tuple[str, int] | None, str]:
        """The client, scheme and host a trusted proxy forwarded for this stream, else the
        peer's own (as ``HttpProtocol._forwarded`` decides for an HTTP/1.1 request)."""
        protocol = self.protocol
        peer, scheme = protocol.peer, protocol.peer_scheme
        proxies = self.state.trusted_proxies
        if not request.forwarded or proxies is None:
            return request, peer, scheme
        if self.peer_trusted is None:
            self.peer_trusted = proxies.trusts(peer[0] if peer else None)
        if not self.peer_trusted:
            return request, peer, scheme
        origin = resolve_forwarded(request.headers, peer[0] if peer else None, proxies)
        scheme = origin.scheme or scheme
        if not self.state.forwarded_client:
            return request, peer, scheme
        client = origin.client or peer
        if origin.host is not None:
            headers = [(name, origin.host if name == b"host" else value)
                       for name, value in request.headers]
            request = dataclasses.replace(request, headers=headers)
        return request, client, scheme

    def _answer_error(self, stream_id: int, status: int, end_stream: bool) -> None:
        """Answer a refused request head on its stream, as HTTP/1.1 answers with a status."""
        status = status if 400 <= status <= 599 else 400
        body = b"%d %s\n" % (status, REASONS.get(status, b"Error"))
        engine = self.engine
        try:
            engine.send_headers(stream_id, [(b":status", b"%d" % status),
                                        (b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", b"%d" % len(body))])
            engine.send_data(stream_id, body, end_stream=True)
            if not end_stream:
                engine.reset_stream(stream_id, errors.NO_ERROR)
        except (ProtocolError, StreamClosedError):
            pass
        if self.state.metrics is not None:
            self.state.metrics.rejected(status)
        self._out()

    def _malformed(self, stream_id: int) -> None:
        """A malformed trailer block: the stream is reset (RFC 9113 §8.1.1)."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.gone()
            self.reset(stream, errors.PROTOCOL_ERROR)
        else:
            self._refuse_stream(stream_id, errors.PROTOCOL_ERROR)

    def _refuse_stream(self, stream_id: int, code: int) -> None:
        with contextlib.suppress(ProtocolError, StreamClosedError):
            self.engine.reset_stream(stream_id, code)

    def refuse_body(self, stream: H2Stream, status: int, reason: str) -> None:
        """A body past ``--limit-request-body``: the status if nothing was answered yet, else
        a reset."""
        log.debug("stream %d from %s: %s", stream.stream_id, self.protocol.peer, reason)
        cycle = stream.cycle
        stream.gone()
        if cycle is not None and cycle.response_state == RESPONSE_NOT_STARTED:
            self._answer_error(stream.stream_id, status, False)
            self._drop(stream)
        else:
            self.reset(stream, errors.CANCEL)

    def acknowledge(self, stream: H2Stream, size: int) -> None:
        """``size`` flow-controlled bytes of ``stream`` are taken: the client may send more
        (the engine sends WINDOW_UPDATE once half a window is taken)."""
        if size and not self.ended:
            with contextlib.suppress(ProtocolError, StreamClosedError, ValueError):
                self.engine.acknowledge_received_data(size, stream.stream_id)
            self._out()  # the app's receive, outside data_received: nothing else writes it

    def _acknowledge_closed(self, stream_id: int, size: int) -> None:
        """Data on a stream no longer served: its window is nobody's, the connection's is."""
        with contextlib.suppress(ProtocolError, StreamClosedError, ValueError):
            self.engine.acknowledge_received_data(size, stream_id)

    def send_continue(self, stream: H2Stream) -> None:
        with contextlib.suppress(ProtocolError, StreamClosedError):
            self.engine.send_headers(stream.stream_id, [(b":status", b"100")])
        self._out()

    def flush(self, stream: H2Stream) -> None:
        """Frame what ``stream`` has for the wire, as far as the windows allow."""
        if stream.closed or self.ended:
            return
        engine = self.engine
        conn = stream.responder
        stream_id = stream.stream_id
        try:
            for head in conn.informational:
                engine.send_headers(stream_id, head)
            conn.informational.clear()
            pending = stream.pending
            if conn.head is not None:
                head = conn.head
                conn.head = None
                engine.send_headers(stream_id, head,
                                end_stream=conn.ended and not pending and not conn.trailers)
                if conn.ended and not pending and not conn.trailers:
                    stream.end_sent = True
            while pending:
                window = min(engine.local_flow_control_window(stream_id),
                             engine.max_outbound_frame_size)
                if window <= 0:
                    if not stream.stalled_since:
                        stream.stalled_since = self.loop.time()
                        self._watch()
                    break
                stream.stalled_since = 0.0
                chunk = pending[0]
                start = stream.pending_start
                if len(chunk) - start <= window:
                    del pending[0]
                    stream.pending_start = 0
                    piece = chunk[start:] if start else chunk
                else:  # the next frame's worth, copied alone (the rest stays where it is)
                    piece = chunk[start:start + window]
                    stream.pending_start = start + window
                stream.pending_size -= len(piece)
                last = not pending and conn.ended and not conn.trailers
                engine.send_data(stream_id, piece, end_stream=last)
                if last:
                    stream.end_sent = True
            if not pending and conn.ended and not stream.end_sent:
                if conn.trailers:
                    engine.send_headers(stream_id, conn.trailers, end_stream=True)
                else:
                    engine.end_stream(stream_id)
                stream.end_sent = True
        except (ProtocolError, StreamClosedError) as exc:
            log.debug("stream %d from %s ended while sending: %s", stream_id,
                      self.protocol.peer, exc)
            stream.gone()
            self._drop(stream)
        self._out()
        stream.update_paused()
        if stream.end_sent and stream.complete:
            self.stream_finished(stream)

    def stream_finished(self, stream: H2Stream) -> None:
        """Its response is complete and its last frame queued."""
        if not stream.request_ended and not self.ended:
            # answered before the body ended: the client may stop sending it (RFC 9113 §8.1)
            with contextlib.suppress(ProtocolError, StreamClosedError):
                self.engine.reset_stream(stream.stream_id, errors.NO_ERROR)
            self._out()
        stream.closed = True
        self._drop(stream)

    def reset(self, stream: H2Stream, code: int) -> None:
        """End ``stream`` from our side (the app failed mid-response, or a stalled client)."""
        stream.closed = True
        stream.pending = []
        stream.pending_size = 0
        stream.pending_start = 0
        if not self.ended:
            with contextlib.suppress(ProtocolError, StreamClosedError):
                self.engine.reset_stream(stream.stream_id, code)
            self._out()
        stream.update_paused()
        self._drop(stream)

    def _drop(self, stream: H2Stream) -> None:
        unacked = stream.unacked
        if unacked:
            # body bytes the app never took: the connection's window gets them back, or each
            # such stream would shrink it for good
            stream.unacked = 0
            self.acknowledge(stream, unacked)
        streams = self.streams
        if streams.pop(stream.stream_id, None) is not None and not streams:
            if self.goaway_sent:
                self._finish()
            elif not self.ended:
                self.protocol.session_idle()

    def _reset_by_client(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        cancelled = not stream.complete
        stream.gone()
        self._drop(stream)
        if cancelled and not self.resets.spend(self.loop.time()):
            log.warning("closing the HTTP/2 connection from %s: it cancelled more than %d "
                        "streams in a few seconds", self.protocol.peer, self.resets.allowance)
            self._end_connection(errors.ENHANCE_YOUR_CALM)

    def _idle_frame(self) -> None:
        """Count a frame that asks for nothing; past the budget, end the connection."""
        if not self.idle_frames.spend(self.loop.time()) and not self.ended:
            log.warning("closing the HTTP/2 connection from %s: more than %d frames that ask "
                        "for nothing in a few seconds", self.protocol.peer,
                        self.idle_frames.allowance)
            self._end_connection(errors.ENHANCE_YOUR_CALM)

    def _window_opened(self) -> bool:
        """Send what waited for the client's window; whether anything did."""
        waited = False
        for stream in list(self.streams.values()):
            if stream.pending:
                waited = True
                self.flush(stream)
        return waited

    def _watch(self) -> None:
        """Check the streams' deadlines (:meth:`_check_deadlines`) soon: a timer per connection,
        and only while a stream has one, so a connection at rest arms none."""
        if self.timer is None:
            self.timer = self.loop.call_later(self.check_interval, self._check_deadlines)

    def _check_deadlines(self) -> None:
        """Each stream whose queued bytes the client's window blocked for ``--send-timeout``
        is reset (a client that opens no window holds the app and its buffers); each whose
        request body paused for ``--body-timeout`` while we read is answered 408, or reset
        once its response started (a client that opens streams and sends nothing holds apps)."""
        self.timer = None
        now = self.loop.time()
        send_timeout = self.state.send_timeout
        waiting = False
        for stream in list(self.streams.values()):
            since = stream.stalled_since
            if since:
                if now - since >= send_timeout:
                    log.info("resetting stream %d from %s: its window stayed closed for %.3g s",
                             stream.stream_id, self.protocol.peer, send_timeout)
                    stream.gone()
                    self.reset(stream, errors.CANCEL)
                    continue
                waiting = True
            due = stream.body_due
            if due and not stream.request_ended:
                if stream.reading_paused:  # we hold the client back: it is not stalling
                    stream.body_due = now + self.state.limits.body_timeout
                elif now >= due:
                    self.refuse_body(stream, 408, "request body not received in time")
                    continue
                waiting = True
        if waiting and not self.ended:
            self._watch()

    # -- the connection's end -------------------------------------------------------------------

    def _terminated(self, error_code: int) -> None:
        """The client sent GOAWAY: no new streams; close once the open ones are answered."""
        if error_code:
            self._lost()
            self.protocol.close()
            return
        self.goaway_sent = True
        if not self.streams:
            self._finish()

    def _finish(self) -> None:
        """Every stream is done after GOAWAY: the last frame, then close."""
        if self.ended:
            return
        with contextlib.suppress(ProtocolError):
            self.engine.close_connection(last_stream_id=self.last_stream_id)
        self._out()
        self.ended = True
        self.protocol.close()

    def _end_connection(self, code: int | None = None) -> None:
        """A protocol error or an abusive client: GOAWAY (already queued by the engine for its
        own errors), every stream told, then close."""
        if code is not None:
            with contextlib.suppress(ProtocolError):
                self.engine.close_connection(error_code=code, last_stream_id=self.last_stream_id)
        self._out()
        self._lost()
        self.protocol.close()

    def _lost(self) -> None:
        self.ended = True
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.gone()

    def _out(self) -> None:
        data = self.engine.data_to_send()
        if data:
            self.protocol.write(data)

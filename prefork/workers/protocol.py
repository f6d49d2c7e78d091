"""The one ``asyncio.Protocol`` of a worker: transport <-> ``ServerConnection``.

It feeds received bytes to the sans-I/O engine, starts one cycle per request through the
worker's ``Serving`` (``prefork.workers.contract``: it knows no app interface), writes what the
engine serialises, and owns everything that needs a clock or a socket.

Rules it keeps, per the engine's contract (``prefork.http.connection``):

* **Early responses.** A response complete before its request body: the rest of the body is
  read and dropped up to ``limits.max_buffer`` bytes and the connection reused; past that (or
  while the client waits for ``100 Continue``) it is closed.
* **EOF.** A FIN cannot tell a half-close from a close: after a complete request the response
  still goes out (then the connection closes), and an app waiting in ``receive()`` gets
  ``http.disconnect`` so that a long poll does not outlive its client. An incomplete request
  at EOF is dropped unanswered.
* **Lingering close.** Closing while the client may still send (an unread body, pipelined
  bytes, an error answer) shuts our side and reads and drops for up to ``LINGER_TIMEOUT``:
  closing a socket with unread data sends RST, which can destroy the response before the client
  read it (RFC 9112 §9.6).
* **Flow control.** Reading stops while the app has not taken ``max_buffer`` bytes of body or
  while a pipelined request waits; a send waits while the transport is above its high-water
  mark. Memory per connection is bounded by both.
* **Send timeout.** Bytes waiting for a client that reads nothing must become fewer within
  ``--send-timeout``, else the connection is aborted, which frees its buffers and its
  ``--worker-connections`` slot and wakes whatever waited to write. A large one-piece body is
  handed over in ``BODY_SLICE`` pieces as the client reads (:meth:`HttpProtocol.write_apart`),
  so the transport never holds much more than its high-water mark.
* **Writes are held for one pass.** Small writes (up to ``JOIN_LIMIT`` in all) from any
  source go out together at the end of the loop's pass: one wake-up of a client's reader per
  batch instead of one per response, which halves the kernel's share of a small request's
  CPU. A large or streamed answer goes out at once (no copying, and the transport's
  back-pressure applies), and so does the end of a connection's last response, which its close
  would release in the same pass anyway; what is held is released before any other use of the
  transport, so bytes keep their order.
* **PROXY protocol.** The header reader (``prefork.workers.proxy_reader``) takes the first
  bytes in the slot a WebSocket session takes after an upgrade, so no request pays a check
  for it.
* **Deadlines.** One deadline per connection and a phase saying what it means (idle, head,
  body, lingering), plus the send deadline while bytes wait. No connection has a timer: one
  sweep per worker (``prefork.workers.serving``) acts on the passed ones, up to a quarter of the
  shortest timeout late, because arming and cancelling a timer per connection costs each
  connection more than the whole sweep. The body deadline runs only while we read: a client we
  paused, or that waits for ``100 Continue``, is not stalling.

Hot path: bytes that hold exactly one whole request on an idle connection are taken from the
engine in one call (``ServerConnection.receive_request``); anything else goes event by event
through :meth:`_advance`. Both take the same steps (:meth:`_request_arrived`,
:meth:`_body_arrived`, :meth:`_request_ended`). A cycle's coroutine starts eagerly
(``prefork.workers.eager``): a handler that never waits runs to its end inside
``data_received`` without a task of its own, and a cycle may finish with no coroutine at all
(the inline WSGI answer to a GET).

Over 600 lines, as one class: what is left here is what every request runs through (reading,
the request steps, writing, the deadline checks), and a method moved behind a trait or a
Protocol would be a slower call on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import IO, Any, Final, cast

from prefork.errors import RemoteProtocolError
from prefork.http.connection import (
    CLOSED,
    DONE,
    IDLE,
    JOIN_LIMIT,
    MUST_CLOSE,
    SEND_BODY,
    ServerConnection,
)
from prefork.http.events import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
)
from prefork.proxy import resolve as resolve_forwarded
from prefork.workers import observation
from prefork.workers.contract import (
    RESPONSE_COMPLETE,
    RESPONSE_NOT_STARTED,
    Cycle,
    Session,
)
from prefork.workers.file_sending import send_file
from prefork.workers.health import HealthCycle, is_health_request
from prefork.workers.proxy_reader import ProxyHeaderReader
from prefork.workers.serving import (
    LINGER_TIMEOUT,
    NEXT_REQUEST_GRACE,
    NO_DEADLINE,
    SPARE_ENGINES,
    ServingState,
    Watched,
    socket_address,
)
from prefork.workers.tls_facts import tls_facts

log = logging.getLogger("prefork.error")

# A one-piece body longer than this is handed to the transport in slices of this size as the
# client reads (see write_apart).
BODY_SLICE: Final = 256 * 1024

# Deadline phases: what the connection's single deadline means (NO_DEADLINE: none runs).
_IDLE: Final = 1
_HEAD: Final = 2
_BODY: Final = 3
_LINGER: Final = 4
_BODY_PENDING: Final = 5  # a request started; its body deadline is set when more bytes are needed
_CONTINUE: Final = InformationalResponse(100)
_SWITCH_TO_H2C: Final = InformationalResponse(101, [(b"connection", b"Upgrade"),
                                                    (b"upgrade", b"h2c")])


class HttpProtocol(asyncio.Protocol, Watched):
    """One client connection."""

    __slots__ = (
        "advancing", "again", "client", "closed", "conn", "cycle", "deadline", "discard_left",
        "file_left", "head_at", "held", "lingering", "loop", "observation", "peer",
        "peer_scheme", "peer_trusted", "pending", "phase", "reading_paused", "requests_started",
        "scheme", "send_deadline", "send_left", "server", "state", "tls", "transport",
        "unsent", "upgraded", "write_paused", "write_waiter",
    )  # fmt: skip

    def __init__(self, state: ServingState, local: tuple[str, int] | None = None) -> None:
        """``local``: the listener's own address when it is bound to a specific one, which
        every connection it accepts shares (asking the socket costs a connection 2.3k
        instructions); None to ask each connection's socket."""
        self.state = state
        self.loop = state.loop
        spare = state.spare_engines
        self.conn = spare.pop() if spare else ServerConnection(
            state.limits, parser=state.parser, server_header=state.server_header,
            date_header=state.date_header, date_cache=state.date_cache,
            upgrades=state.upgrades)
        self.transport: asyncio.Transport | None = None
        self.cycle: Cycle | None = None  # the cycle whose response is not complete yet
        self.pending: Cycle | None = None  # created, its task not started yet
        self.held: bytes | None = None  # written while reading; see release_held
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = local
        self.scheme = "http"
        self.tls: dict[str, Any] | None = None
        self.phase = NO_DEADLINE
        self.deadline = 0.0
        self.discard_left = 0
        self.reading_paused = False
        self.write_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        # The send timeout: when the bytes still to go out (send_left of them then) must have
        # become fewer; 0.0 while nothing waits on the client (see send_deadline_passed).
        self.send_deadline = 0.0
        self.send_left = 0
        self.unsent: memoryview | None = None  # the rest of a one-piece body (write_apart)
        self.file_left = 0  # bytes of a file sendfile(2) waits to write (workers.file_sending)
        self.closed = False
        self.lingering = False
        self.advancing = False
        self.again = False
        self.requests_started = 0
        self.head_at = 0.0  # perf_counter() when the request's head arrived (metrics on only)
        # who takes the bytes instead of the engine: a WebSocket session, or before the first
        # request the PROXY header reader (so the hot path pays no extra check for it)
        self.upgraded: Session | None = None
        self.observation: observation.Observation | None = None
        self.peer: tuple[str, int] | None = None
        self.peer_scheme = "http"
        # whether --forwarded-allow-ips trusts the peer; None until a request carries a
        # forwarding field, as most never do (see _forwarded)
        self.peer_trusted: bool | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.client = socket_address(transport.get_extra_info("peername"))
        if self.server is None:
            sockname = transport.get_extra_info("sockname")
            server = socket_address(sockname)
            # A unix socket's name is its path; ASGI wants (path, None) for it.
            self.server = server if server is not None else (str(sockname or ""), None)
        if self.state.tls and transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
            # The handshake is done by now: what it settled is read once for every request.
            self.tls = tls_facts(transport.get_extra_info("ssl_object"), self.state.server_cert)
        self.peer, self.peer_scheme = self.client, self.scheme
        state = self.state
        state.watch(self)
        if len(state.connections) > state.worker_connections:
            # over --worker-connections: a clear answer instead of a silent queue
            self._reject(RemoteProtocolError("too many connections to this worker", 503))
            return
        senders = self.state.proxy_senders
        if senders is not None:
            required = senders.trusts(self.peer[0] if self.peer else None)
            self.upgraded = ProxyHeaderReader(self, required)
        elif state.http2 is not None:
            self._offer_http2()
        self._arm(_IDLE, self.state.limits.keep_alive_timeout)

    def data_received(self, data: bytes) -> None:
        if self.upgraded is not None:
            self.upgraded.data_received(data)
            return
        if self.closed:
            return  # lingering: read and drop
        phase = self.phase
        if phase == _IDLE and not self.advancing:
            whole = self.conn.receive_request(data)
            if whole is not None:
                self._whole_request(whole[0], whole[1])
                return
        else:
            self.conn.receive_data(data)
        if phase == _BODY:
            self.deadline = self.loop.time() + self.state.limits.body_timeout
        elif phase == _IDLE:
            # The head deadline is only armed when these bytes did not hold a whole head: a
            # keep-alive request in one segment costs no deadline update on its way in.
            started = self.requests_started
            self._advance()
            if self.requests_started == started and self.phase == _IDLE and not self.closed \
                    and not self._taken_over():
                self._arm(_HEAD, self.state.limits.headers_timeout)
            return
        self._advance()

    def _taken_over(self) -> bool:
        """Whether a session took the bytes over (an upgrade while advancing). A method: read
        inline after the early return above, mypyc would take the attribute for None."""
        return self.upgraded is not None

    def eof_received(self) -> bool:
        if self.upgraded is not None:
            self.upgraded.eof_received()
            return True
        if self.closed:
            self.close()  # the client finished: the lingering close is over
            return True
        self.conn.receive_data(b"")
        self._advance()
        return True  # keep the write side open until the response in flight is sent

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lingering = False
        self.held = None
        self.unsent = None
        self.send_deadline = 0.0
        state = self.state
        conn = self.conn
        spare = state.spare_engines
        # The engine serves the next connection when this one ended between two messages (the
        # cycle's response complete; no session took the bytes over) and the worker keeps
        # fewer than SPARE_ENGINES: Connection: close, or an idle keep-alive connection closed.
        if self.cycle is None and self.upgraded is None and len(spare) < SPARE_ENGINES \
                and conn.recycle():
            spare.append(conn)
            self.conn = state.gone_engine
        else:
            conn.release()
        state.connections.discard(self)
        self._clear_deadline()
        if self.cycle is not None:
            self.cycle.client_gone()
        if self.upgraded is not None:
            self.upgraded.connection_lost(exc)
        waiter = self.write_waiter
        self.write_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.time_sending()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.unsent is not None:
            if not self._feed():  # the next slice filled the buffer again
                return
            if self.cycle is not None:  # its response_complete waited for the last slice
                self.response_complete()
            if self.write_paused:  # what followed it filled the buffer again
                return
        if self.closed:
            self.time_sending()  # a closing connection's last bytes are still timed
        else:
            self.send_deadline = 0.0
        upgraded = self.upgraded
        if upgraded is not None:
            upgraded.writing_resumed()
        waiter = self.write_waiter
        self.write_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the engine loop ------------------------------------------------------------------------

    def _advance(self) -> None:
        """Take every event the engine has, then start the cycle a request created.

        Re-entrant calls (an eagerly started app completing its response inside this call) only
        ask for one more round, so events are always taken in order by one frame.
        """
        if self.advancing:
            self.again = True
            return
        self.advancing = True
        try:
            while True:
                self.again = False
                self._take_events()
                cycle = self.pending
                if cycle is not None:
                    self.pending = None
                    self._run(cycle)
                if not self.again or self.closed:
                    break
        finally:
            self.advancing = False

    def _whole_request(self, request: Request, body: bytes) -> None:
        """A request that arrived whole and alone, its events already taken from the engine:
        its ``Request``, its body (if any, in one ``Data``) and its ``EndOfMessage`` go through
        the same steps as :meth:`_take_events` takes them, and its cycle starts at once."""
        if not self._request_arrived(request):
            return
        cycle = self.pending
        assert cycle is not None
        self.pending = None
        if body:
            self._body_arrived(body)  # within max_buffer: reading goes on
        self._request_ended()
        self.advancing = True
        self.again = False
        try:
            self._run(cycle)
        finally:
            self.advancing = False
        if self.again and not self.closed:
            self._advance()

    def _take_events(self) -> None:
        conn = self.conn
        while not self.closed and self.upgraded is None:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._reject(exc)
                return
            kind = type(event)
            if kind is Request:
                if not self._request_arrived(event):  # type: ignore[arg-type]  # kind is Request
                    return
            elif kind is EndOfMessage:
                self._request_ended()
            elif event is NEED_DATA:
                if self.phase == _BODY_PENDING:  # the body is still to come: now it is timed
                    self._arm(_BODY, self.state.limits.body_timeout)
                return
            elif event is PAUSED:  # a pipelined request waits for this cycle to end
                self.pause_reading()
                return
            elif kind is Data:
                if not self._body_arrived(event.data):  # type: ignore[union-attr]  # kind is Data
                    return
            else:  # ConnectionClosed: the client shut down its sending side
                self._on_eof()
                return

    # -- the steps of a request: the one path both ways of taking events go through ------------

    def _request_arrived(self, request: Request) -> bool:
        """Admit a request's head and make its cycle (``cycle`` and ``pending``); False when it
        was refused or took the connection over (an upgrade)."""
        state = self.state
        if state.counters.in_flight >= state.max_in_flight:
            # a clear answer at once, never an unbounded queue (uvicorn's 503)
            self._reject(RemoteProtocolError("too many requests in flight", 503))
            return False
        upgrade = request.upgrade
        if upgrade is not None:
            if upgrade == b"websocket" and state.websockets:
                self._upgrade(request)
                return False
            if upgrade == b"h2c":  # the engine switches to it only with --http2
                self._upgrade_h2c(request)
                return False
        self._start_cycle(request)
        return True

    def _body_arrived(self, data: bytes) -> bool:
        """A piece of the request body; False when the connection closes over it."""
        cycle = self.cycle
        if cycle is not None:
            cycle.body_received(data)
            if cycle.body_size > self.state.limits.max_buffer:
                self.pause_reading()
            return True
        # the rest of a body whose response went out early
        self.discard_left -= len(data)
        if self.discard_left < 0:
            self._close_after_response()
            return False
        return True

    def _request_ended(self) -> None:
        if self.phase == _BODY or self.phase == _BODY_PENDING:
            self.phase = NO_DEADLINE
        cycle = self.cycle
        if cycle is not None:
            cycle.request_complete()
        else:  # the discarded body ended: the connection can be reused
            self._next_cycle()

    def _forwarded(self, request: Request) -> Request:
        """Per request: the client, scheme and host a trusted proxy forwarded, else the peer's
        own (one upstream connection carries many clients' requests, and a plain request after
        a forwarded one must not keep its answer)."""
        proxies = self.state.trusted_proxies
        # The engine notes a forwarding field while checking the head; most requests carry
        # none, and skip both the trust question and resolve(), which parses the peer's address
        # again (5 µs per request, bench/http_engine.py).
        if request.forwarded and proxies is not None:
            if self.peer_trusted is None:  # once per connection, and only for such a request
                self.peer_trusted = proxies.trusts(self.peer[0] if self.peer else None)
            if self.peer_trusted:
                origin = resolve_forwarded(request.headers, self.peer[0] if self.peer else None,
                                           proxies)
                self.scheme = origin.scheme or self.peer_scheme
                if not self.state.forwarded_client:  # WSGI: the scheme alone, as gunicorn
                    self.client = self.peer
                    return request
                self.client = origin.client or self.peer
                if origin.host is None:
                    return request
                headers = [(name, origin.host if name == b"host" else value)
                           for name, value in request.headers]
                return dataclasses.replace(request, headers=headers)
        self.client, self.scheme = self.peer, self.peer_scheme
        return request

    def _start_cycle(self, request: Request) -> None:
        request = self._forwarded(request)
        state = self.state
        if state.metrics is not None:
            self.head_at = time.perf_counter()
        cycle: Cycle
        if state.health_path is not None and is_health_request(request.target,
                                                               state.health_path):
            cycle = HealthCycle(self, request, state.draining or state.unready)
        else:
            if state.observing:
                self.observation = observation.begin(self, request)
            cycle = state.serving.cycle(self, request)
        self.cycle = cycle
        self.pending = cycle
        self.requests_started += 1
        if state.closing_connections:
            self.conn.close_after_response()
        # The body deadline starts once the engine needs more bytes (none for a GET, whose end
        # follows at once); or, when the client waits for 100 Continue, with the 100.
        self.phase = NO_DEADLINE if request.expect_continue else _BODY_PENDING

    def _run(self, cycle: Cycle) -> None:
        state = self.state
        state.counters.in_flight += 1
        coro = cycle.begin(state.app)
        if coro is None:
            return
        task = state.start_task(coro)
        if task is not None:
            cycle.task = task
            state.tasks.add(task)

    def _on_eof(self) -> None:
        cycle = self.cycle
        if cycle is None:
            self.close()  # idle, an incomplete head, or a body being discarded: nothing to say
        elif self.conn.their_state != CLOSED:
            cycle.client_gone()  # the body was cut short: the request is dropped
            self.close()
        else:  # a complete request, then EOF: the response still goes out, then close
            cycle.client_finished_sending()

    def _upgrade(self, request: Request) -> None:
        """Hand the connection to a WebSocket session; from now on bytes go to it."""
        self._clear_deadline()
        request = self._forwarded(request)
        state = self.state
        session = state.serving.upgrade(self, request)
        self.upgraded = session
        self.requests_started += 1
        state.counters.in_flight += 1
        if self.conn.trailing_data:
            session.data_received(self.conn.trailing_data)
        self.loop.create_task(session.run(state.app))

    def session_finished(self) -> None:
        counters = self.state.counters
        counters.in_flight -= 1
        counters.requests += 1
        if self.state.counting_requests:
            self.state.on_request_done(counters.requests)

    def _reject(self, exc: RemoteProtocolError) -> None:
        """The client broke HTTP (or was too slow): answer with the status the engine chose,
        unless a response already started, then close."""
        log.debug("rejecting request from %s: %s", self.client, exc)
        cycle = self.cycle
        if cycle is not None:
            cycle.client_gone()
        answer = self.conn.error_response(exc)
        if not answer:
            self.abort()
            return
        self.write(answer)
        if self.state.metrics is not None:
            self.state.metrics.rejected(exc.status_hint if 400 <= exc.status_hint <= 599 else 500)
        self._linger()

    # -- called by the PROXY header reader -------------------------------------------------------

    def proxy_header_read(self, source: tuple[str, int] | None, rest: bytes) -> None:
        """The PROXY header is read: ``source`` (None: the peer's own) becomes the peer and the
        client; the engine takes the connection from ``rest`` on."""
        self.upgraded = None
        if source is not None:
            self.peer = self.client = source
            self.peer_trusted = None  # asked again, of the address the header gave
        self._arm(_IDLE, self.state.limits.keep_alive_timeout)
        if self.state.http2 is not None:
            self._offer_http2()
        if rest:
            self.data_received(rest)

    def proxy_header_refused(self, exc: RemoteProtocolError) -> None:
        self.upgraded = None
        self._reject(exc)

    def proxy_header_partial(self) -> None:
        """Part of the header came: the rest is due within the request head's time."""
        if self.phase == _IDLE:
            self._arm(_HEAD, self.state.limits.headers_timeout)

    # -- HTTP/2 (prefork.workers.h2_session) ---------------------------------------------------
    # Imported where used: a server without --http2 never loads h2 (its worker pays 76 M
    # instructions at start-up for it); one with it has it imported before the fork
    # (prefork.server).

    def _offer_http2(self) -> None:
        """With --http2, at the connection's start: TLS that chose h2 by ALPN is HTTP/2 from
        the first byte; cleartext may open with the preface (prior knowledge)."""
        transport = self.transport
        if self.scheme == "https" and transport is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._start_http2(b"")
        elif self.state.h2_prior_knowledge:
            from prefork.workers.h2_preface import PrefaceReader

            self.upgraded = PrefaceReader(self)

    def preface_read(self, http2: bool, data: bytes) -> None:
        """The preface reader's answer: HTTP/2 from ``data`` on, or HTTP/1.1."""
        self.upgraded = None
        if http2:
            self._start_http2(data)
        else:
            self.data_received(data)

    def _start_http2(self, data: bytes) -> None:
        from prefork.workers.h2_session import Http2Session

        session = Http2Session(self)
        self.upgraded = session
        session.start(data)

    def _upgrade_h2c(self, request: Request) -> None:
        """``Upgrade: h2c`` on a request without a body: 101, then the request is stream 1."""
        from prefork.http2.requests import upgrade_settings

        settings = upgrade_settings([value for name, value in request.headers
                                     if name == b"http2-settings"])
        if settings is None:
            # not an upgrade HTTP/2 can take (RFC 9113 §3.2 requires exactly one well-formed
            # HTTP2-Settings): answered as HTTP/1.1, then closed, as any declined upgrade
            self.conn.close_after_response()
            self._start_cycle(dataclasses.replace(request, upgrade=None))
            return
        from prefork.workers.h2_session import Http2Session

        self._clear_deadline()
        self.write(self.conn.send(_SWITCH_TO_H2C))
        session = Http2Session(self)
        self.upgraded = session
        session.start_upgraded(request, settings, self.conn.trailing_data)

    def session_idle(self) -> None:
        """An HTTP/2 connection has no open stream: its keep-alive deadline runs."""
        self._arm(_IDLE, self.state.limits.keep_alive_timeout)

    def session_busy(self) -> None:
        """An HTTP/2 connection has a stream open: no deadline of its own (its streams'
        sends are timed by the session)."""
        self._clear_deadline()

    # -- called by the cycle --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if not data or self.closed or transport is None:
            return
        held = self.held
        if held is not None:
            if len(held) + len(data) <= JOIN_LIMIT:
                self.held = held + data  # behind what is held already, never before it
                return
            self.release_held()  # a large answer: no copying, and the transport's back-pressure
        elif len(data) <= JOIN_LIMIT and self.conn.our_state is not MUST_CLOSE:
            # Held until the loop's pass ends, with the other connections' answers (see
            # "Writes are held for one pass" above). The end of a connection's last response
            # is not: the close that follows at once would release it in the same pass.
            self.held = data
            self.state.hold_writes(self)
            return
        transport.write(data)

    def release_held(self) -> None:
        """Write what :meth:`write` held back; before any other use of the transport."""
        held = self.held
        if held is not None:
            self.held = None
            transport = self.transport
            if transport is not None and not transport.is_closing():  # else it would be dropped
                transport.write(held)

    def write_apart(self, head: bytes, body: bytes) -> None:
        """A head and a large body, not joined (one writev on uvloop; see JOIN_LIMIT).

        A body over ``BODY_SLICE`` goes out one slice (a memoryview, no copy) at a time, the
        next when the transport's buffer drains, so the transport never holds more than a
        slice past its high-water mark: handed over whole, what the socket does not take at
        once sits in the transport's buffer until the client reads it (the standard loop's
        transport copies it there). Until the last slice is handed over the response is not
        complete (see response_complete), so nothing overtakes it."""
        transport = self.transport
        if self.closed or transport is None:
            return
        self.release_held()
        if len(body) <= BODY_SLICE:
            transport.writelines((head, body))
            return
        unsent = memoryview(body)
        self.unsent = unsent[BODY_SLICE:]
        transport.writelines((head, unsent[:BODY_SLICE]))
        self._feed()

    def _feed(self) -> bool:
        """Hand the transport slices of ``unsent`` until its buffer is full (False) or none is
        left (True)."""
        transport = self.transport
        unsent = self.unsent
        while unsent is not None and not self.write_paused:
            if self.closed or transport is None:
                self.unsent = None
                return False
            piece = unsent[:BODY_SLICE]
            unsent = unsent[BODY_SLICE:] if len(unsent) > BODY_SLICE else None
            self.unsent = unsent
            transport.write(piece)
        return unsent is None

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self.write_paused and not self.closed:
            waiter = self.write_waiter
            if waiter is None or waiter.done():
                waiter = self.write_waiter = self.loop.create_future()
            await waiter

    async def send_file(self, file: IO[bytes], count: int, offset: int = 0) -> int:
        """Write ``count`` bytes of ``file`` from ``offset`` (``prefork.workers.file_sending``);
        returns how many went out."""
        return await send_file(self, file, count, offset)

    def send_continue(self) -> None:
        conn = self.conn
        if conn.client_is_waiting_for_100_continue and not self.closed:
            self.write(conn.send(_CONTINUE))
            self._arm(_BODY, self.state.limits.body_timeout)

    def send_informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if not self.closed:
            self.write(self.conn.send(InformationalResponse(status, headers)))

    def body_consumed(self, _size: int) -> None:
        if self.reading_paused and self.cycle is not None and self.conn.their_state == SEND_BODY:
            self.resume_reading()
            self._arm(_BODY, self.state.limits.body_timeout)

    def response_complete(self) -> None:
        if self.unsent is not None:
            return  # called again by _feed when the body's last slice is handed over
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
        if self.closed:
            return
        conn = self.conn
        ready = self._reuse()
        if ready is not None:  # the usual end: kept alive, both sides done, next cycle begun
            if ready:
                self._advance()
            return
        if not conn.keep_alive:
            self._close_after_response()
        elif conn.their_state == SEND_BODY:
            # Answered before the body arrived (a 404 to a POST): drop the rest, then reuse.
            self.discard_left = state.limits.max_buffer
            self._arm(_BODY, state.limits.body_timeout)
            self.resume_reading()
            self._advance()
        else:
            self.close()

    def cycle_finished(self, cycle: Cycle) -> None:
        """The app's call returned (or raised) and the cycle has answered for it."""
        state = self.state
        state.counters.in_flight -= 1
        task = cycle.task
        if task is not None:
            state.tasks.discard(task)
        if cycle.response_state != RESPONSE_COMPLETE and self.cycle is cycle and not self.closed:
            self.abort()

    def _next_cycle(self) -> None:
        """Start the next cycle if the connection is kept (the rest of a discarded body
        ended); else close once the response is written."""
        conn = self.conn
        if conn.our_state != DONE or not conn.keep_alive:
            self._close_after_response()
            return
        self._reuse()

    def _reuse(self) -> bool | None:
        """Start the next cycle on a kept connection whose both sides are done, with its
        keep-alive deadline; None (and nothing changes) when the engine cannot reuse the
        connection. True when the engine may already hold events for the next cycle (pipelined
        bytes, or EOF), so that it is worth asking."""
        conn = self.conn
        ready = conn.reuse()
        if ready is None:
            return None
        state = self.state
        limits = state.limits
        if ready and conn.buffered_bytes:
            self._arm(_HEAD, limits.headers_timeout)
        elif state.draining:
            # The response told the client to keep the connection: a request it sent meanwhile
            # is answered (with Connection: close) rather than cut off (see shutdown).
            self._arm(_IDLE, min(NEXT_REQUEST_GRACE, limits.keep_alive_timeout))
        else:
            self._arm(_IDLE, limits.keep_alive_timeout)
        if self.reading_paused:
            self.resume_reading()
        return ready

    # -- closing --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful drain. Every request that reaches the connection is answered, with
        ``Connection: close``, and the connection closes after it; an idle connection is
        closed once it stayed idle for ``NEXT_REQUEST_GRACE``. Closing an idle keep-alive
        connection at once races the request its client may have sent already (it sees its
        connection reset or closed unanswered: 18 to 33 read errors per HUP under
        ``wrk -c50``), the race every keep-alive timeout runs, here run on every connection at
        once. A response whose head is out already promised keep-alive; its client's next
        request gets the close instead."""
        if self.upgraded is not None:
            self.upgraded.shutdown()  # close frame 1001 "going away"
        elif self.closed:
            return
        elif self.cycle is not None:
            if self.conn.our_state == IDLE:  # the head is not out: it can still say close
                self.conn.close_after_response()
        else:
            self.close_when_idle()

    def close_when_idle(self) -> None:
        """Draining: an idle connection gets ``NEXT_REQUEST_GRACE`` to send its next request."""
        if self.phase == _IDLE:
            self.deadline = min(self.deadline, self.loop.time() + NEXT_REQUEST_GRACE)

    def _close_after_response(self) -> None:
        """Close once the response is written; linger if the client may still be sending."""
        conn = self.conn
        if conn.their_state == SEND_BODY or conn.buffered_bytes or self.reading_paused:
            self._linger()
        else:
            self.close()

    def _linger(self) -> None:
        transport = self.transport
        if self.closed or transport is None:
            return
        if not transport.can_write_eof():
            self.close()
            return
        self.release_held()
        self.unsent = None
        self.closed = True  # nothing more is written or parsed
        self.lingering = True
        transport.write_eof()
        self.resume_reading()
        self._arm(_LINGER, LINGER_TIMEOUT)

    def close(self) -> None:
        transport = self.transport
        if transport is None or (self.closed and not self.lingering):
            return
        self.closed = True
        self.lingering = False
        self.unsent = None
        self._clear_deadline()
        self.release_held()
        # Bytes the client has not read yet keep the connection counted (--worker-connections)
        # and watched until they are written or the send timeout aborts it: the transport
        # holds them until then, whatever close() says.
        if transport.get_write_buffer_size():
            self.time_sending()
        else:
            self.state.connections.discard(self)
        transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.release_held()  # as if written at once: what went out before the cut
            self.closed = True
            self.lingering = False
            self.unsent = None
            self.send_deadline = 0.0
            self._clear_deadline()
            self.transport.abort()
            self.state.connections.discard(self)

    # -- flow control and deadlines -------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            if self.phase == _BODY or self.phase == _BODY_PENDING:
                self.phase = NO_DEADLINE  # we stopped the client: it is not stalling
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def _arm(self, phase: int, delay: float) -> None:
        self.phase = phase
        self.deadline = self.loop.time() + delay

    def _clear_deadline(self) -> None:
        self.phase = NO_DEADLINE

    def _waiting_bytes(self) -> int:
        transport = self.transport
        return self.file_left + (transport.get_write_buffer_size() if transport is not None else 0)

    def time_sending(self) -> None:
        """Start the send timeout: the bytes waiting now must become fewer within it."""
        left = self.send_left = self._waiting_bytes()
        self.send_deadline = self.loop.time() + self.state.send_timeout if left else 0.0

    def send_deadline_passed(self) -> None:
        """The sweep found the send timeout passed: go on timing while the client read some of
        what waits for it; abort (freeing the buffers, the connection's slot and whatever
        waits to write) when it read nothing."""
        left = self._waiting_bytes()
        if left and left >= self.send_left and self.transport is not None:
            log.info("aborting the connection to %s: nothing of %d bytes written in %.3g s",
                     self.client, left, self.state.send_timeout)
            cycle = self.cycle
            if cycle is not None:
                cycle.client_gone()
            self.abort()
        elif left:
            self.time_sending()
        else:
            self.send_deadline = 0.0

    def deadline_passed(self) -> None:
        """The sweep found the deadline of the current phase passed: answer or close."""
        phase = self.phase
        self.phase = NO_DEADLINE
        if phase == _HEAD:
            self._reject(RemoteProtocolError("request head not received in time", 408))
        elif phase in (_BODY, _BODY_PENDING):
            cycle = self.cycle
            if cycle is not None and cycle.response_state == RESPONSE_NOT_STARTED:
                self._reject(RemoteProtocolError("request body not received in time", 408))
            elif cycle is not None:
                cycle.client_gone()
                self.abort()
            else:
                self.close()  # the discarded rest of a body stalled
        elif phase == _IDLE and self.upgraded is not None and self.state.http2 is not None:
            from prefork.workers.h2_session import Http2Session

            upgraded = self.upgraded
            if isinstance(upgraded, Http2Session):
                upgraded.shutdown()  # an idle HTTP/2 connection says GOAWAY, then closes
            else:
                self.close()
        else:  # _IDLE or _LINGER
            self.close()

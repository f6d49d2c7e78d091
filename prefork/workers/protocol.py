"""The one ``asyncio.Protocol`` of a worker: transport <-> ``ServerConnection``.

It feeds received bytes to the sans-I/O engine, starts one app cycle per request, writes what
the engine serialises, and owns everything that needs a clock or a socket: the keep-alive,
header and body timers, and flow control in both directions (pause reading while the app has
not consumed the body or a pipelined request waits; pause the app's sends while the socket's
buffer is full). Which parser and which app interface are chosen elsewhere; this is the only
place that touches the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from prefork.asgi.cycle import HttpCycle
from prefork.asgi.scope import http_scope, websocket_scope
from prefork.config import Config
from prefork.errors import RemoteProtocolError
from prefork.http.connection import ServerConnection
from prefork.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
)
from prefork.http.limits import Limits

if TYPE_CHECKING:
    from prefork.asgi.websocket import WebSocketCycle

log = logging.getLogger("prefork.error")

# On drain, how long a connection that has sent nothing yet may take to send its first request.
FIRST_REQUEST_GRACE = 1.0


@dataclass
class Counters:
    requests: int = 0
    in_flight: int = 0


class ServingState:
    """What every connection of one worker shares: the app, settings, counters, live set."""

    def __init__(self, config: Config, app: Any, lifespan_state: dict[str, Any],
                 on_request_done: Callable[[int], None]) -> None:
        self.config = config
        self.app = app
        self.lifespan_state = lifespan_state
        self.on_request_done = on_request_done
        self.limits = Limits(
            max_request_line=config.limit_request_line,
            max_headers=config.limit_request_fields,
            max_header_size=config.limit_request_field_size,
            max_body_size=config.limit_request_body or None,
            keep_alive_timeout=config.keepalive or 0.001,
            headers_timeout=config.headers_timeout,
            body_timeout=config.body_timeout,
        )
        self.websockets = config.ws != "none"
        self.parser = "h11" if config.http == "h11" else "httptools"
        self.server_header: bytes | None = b"prefork" if config.server_header else None
        self.root_path = config.root_path
        self.connections: set[HttpProtocol] = set()
        self.counters = Counters()
        self.draining = False


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.conn = ServerConnection(state.limits, parser=state.parser,
                                     server_header=state.server_header,
                                     date_header=state.config.date_header)
        self.transport: asyncio.Transport | None = None
        self.cycle: HttpCycle | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.reading_paused = False
        self.write_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.requests_started = 0
        self.upgraded: WebSocketCycle | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.client = _address(transport.get_extra_info("peername"))
        server = _address(transport.get_extra_info("sockname"))
        self.server = server if server is not None else (
            str(transport.get_extra_info("sockname") or ""), None)
        self.state.connections.add(self)
        self._set_timer(self.state.limits.keep_alive_timeout, self._on_idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self.upgraded is not None:
            self.upgraded.data_received(data)
            return
        self.conn.receive_data(data)
        if self.cycle is None and self.timer is not None and not self._header_timer:
            self._set_timer(self.state.limits.headers_timeout, self._on_headers_timeout)
            self._header_timer = True
        self._advance()

    _header_timer = False

    def eof_received(self) -> bool:
        if self.upgraded is not None:
            self.upgraded.eof_received()
            return True
        self.conn.receive_data(b"")
        self._advance()
        return True  # keep the write side open until the response in flight is sent

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self._cancel_timer()
        if self.cycle is not None:
            self.cycle.client_gone()
        if self.upgraded is not None:
            self.upgraded.connection_lost(exc)
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the engine loop

    def _advance(self) -> None:
        conn = self.conn
        while not self.closed:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._reject(exc)
                return
            if event is NEED_DATA:
                break
            if event is PAUSED:
                if conn.buffered_bytes > self.state.limits.max_buffer:
                    self._pause_reading()
                break
            kind = type(event)
            if kind is Data:
                assert self.cycle is not None
                self.cycle.body_received(event.data)  # type: ignore[union-attr]  # kind is Data
                if self.cycle.body_size > self.state.limits.max_buffer:
                    self._pause_reading()
                self._set_timer(self.state.limits.body_timeout, self._on_body_timeout)
            elif kind is EndOfMessage:
                assert self.cycle is not None
                self._cancel_timer()
                self.cycle.request_complete()
            elif kind is Request:
                request = cast(Request, event)
                if request.upgrade == b"websocket" and self.state.websockets:
                    self._upgrade(request)
                    return
                self._start_cycle(request)
            elif kind is ConnectionClosed:
                if self.cycle is None:
                    self.close()
                else:
                    self.cycle.client_gone()
                break

    def _start_cycle(self, request: Request) -> None:
        self._cancel_timer()
        self._header_timer = False
        state = self.state
        scope = http_scope(request, scheme="http", client=self.client, server=self.server,
                           root_path=state.root_path, state=state.lifespan_state)
        cycle = HttpCycle(self, scope, request.expect_continue)
        self.cycle = cycle
        self.requests_started += 1
        state.counters.in_flight += 1
        if state.draining:
            self.conn.close_after_response()
        self.loop.create_task(cycle.run(state.app))

    def _upgrade(self, request: Request) -> None:
        """Hand the connection to a WebSocket session; from now on bytes go to it."""
        from prefork.asgi.websocket import WebSocketCycle

        self._cancel_timer()
        state = self.state
        scope = websocket_scope(request, scheme="ws", client=self.client, server=self.server,
                                root_path=state.root_path, state=state.lifespan_state)
        session = WebSocketCycle(self, request, scope)
        self.upgraded = session
        self.requests_started += 1
        if self.conn.trailing_data:
            session.data_received(self.conn.trailing_data)
        self.loop.create_task(session.run(state.app))

    def _reject(self, exc: RemoteProtocolError) -> None:
        """The client broke HTTP: answer with the status the engine chose, then close."""
        log.debug("rejecting request from %s: %s", self.client, exc)
        if self.cycle is not None and self.cycle.response_state != 0:
            self.abort()
            return
        if self.cycle is not None:
            self.cycle.client_gone()
        self.write(self.conn.error_response(exc))
        self.close()

    # -- called by the cycle

    def write(self, data: bytes) -> None:
        if not self.closed and data and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self.write_waiter = self.loop.create_future()
            try:
                await self.write_waiter
            finally:
                self.write_waiter = None

    def send_continue(self) -> None:
        if self.conn.client_is_waiting_for_100_continue:
            self.write(self.conn.send(InformationalResponse(100, [])))

    def body_consumed(self, _size: int) -> None:
        if self.reading_paused and self.cycle is not None:
            self._resume_reading()

    def response_complete(self) -> None:
        state = self.state
        state.counters.requests += 1
        state.counters.in_flight -= 1
        state.on_request_done(state.counters.requests)
        conn = self.conn
        if self.closed:
            return
        if conn.our_state == "DONE" and conn.their_state == "DONE" and conn.keep_alive \
                and not state.draining:
            conn.start_next_cycle()
            self.cycle = None
            self._set_timer(state.limits.keep_alive_timeout, self._on_idle_timeout)
            self._resume_reading()
            self._advance()
        else:
            self.close()

    def cycle_finished(self, cycle: HttpCycle) -> None:
        if cycle.response_state != 2:  # never completed: the connection was cut or aborted
            self.state.counters.in_flight -= 1
            if not self.closed:
                self.abort()

    # -- closing

    def shutdown(self) -> None:
        """Graceful drain: close an idle keep-alive connection now; let the response in flight
        finish with ``Connection: close``. A connection accepted just before the drain whose
        first request has not arrived yet gets a moment for it, so no client that connected
        while we were still accepting sees its connection dropped unanswered."""
        if self.upgraded is not None:
            self.upgraded.shutdown()  # close frame 1001 "going away"
        elif self.cycle is not None:
            self.conn.close_after_response()
        elif self.requests_started == 0:
            self._set_timer(FIRST_REQUEST_GRACE, self.close)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self._cancel_timer()
            self.transport.close()
            self.state.connections.discard(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self._cancel_timer()
            self.transport.abort()
            self.state.connections.discard(self)

    # -- flow control and timers

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_idle_timeout(self) -> None:
        if self.cycle is None:
            self.close()

    def _on_headers_timeout(self) -> None:
        if self.cycle is None:
            self._reject(RemoteProtocolError("request headers not received in time", 408))

    def _on_body_timeout(self) -> None:
        if self.cycle is not None and self.cycle.response_state == 0:
            self.cycle.client_gone()
            self._reject(RemoteProtocolError("request body not received in time", 408))
        else:
            self.abort()


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None

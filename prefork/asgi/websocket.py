"""One ASGI WebSocket session on an upgraded connection: the ``receive`` and ``send`` its app is
given (https://asgi.readthedocs.io/en/latest/specs/www.html#websocket).

The connection (``prefork.workers.contract.Connection``) hands itself over once the HTTP engine has
parsed an upgrade request's head. The WebSocket wire protocol itself (handshake checks,
framing, masking, close codes, permessage-deflate) is the ``websockets`` library's sans-I/O
``ServerProtocol``; this module feeds it bytes, turns its frames into ASGI messages and the
app's messages into its calls, and keeps the one timer that needs a clock: the keep-alive ping,
or, once a close frame is out, the wait for the client's answer.

Rule: it never touches the socket. Bytes leave through ``protocol.write``, back-pressure is
``protocol.drain`` and ``protocol.pause_reading``, the connection ends through
``protocol.close`` or ``protocol.abort``. Reading pauses while more than ``HIGH_WATER``
received messages wait for the app, and while the transport's write buffer is full: the pongs
the library writes for a client's pings are answers it must read, and a client that floods
pings without reading them would otherwise grow the worker by about the size of its flood
(288 MB for 300 MB of pings). Paused, its pings wait in the kernel's buffers, and the send
timeout aborts it if it reads nothing.

The app's side moves through phases: ``handshake`` (``websocket.connect`` is due or delivered,
nothing answered yet), ``response`` (a denial response of the ``websocket.http.response``
extension is being sent), ``open`` (after ``websocket.accept``) and ``closed``. ``_SENDERS``
is the table of what the app may send in each phase.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import CONNECTING, OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from prefork.errors import ClientDisconnected
from prefork.http.events import Request
from prefork.logs.escape import escape

if TYPE_CHECKING:
    from prefork.config import Config
    from prefork.workers.contract import Connection

log = logging.getLogger("prefork.error")

Message = dict[str, Any]

# Pause reading while more than HIGH_WATER received messages wait for the app; resume once it
# is down to LOW_WATER (the websockets library's own connections default to a queue of 16).
HIGH_WATER, LOW_WATER = 16, 4
# How long we wait for the client's close frame after sending ours (RFC 6455 §7.1.1 leaves the
# value to us; the websockets client waits 10 s, so a well-behaved peer answers well inside).
CLOSE_TIMEOUT = 5.0
ABNORMAL_CLOSURE = 1006  # RFC 6455 §7.4.1: no close frame was received
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class WebSocketCycle:
    """The app's view of one WebSocket connection; created by the protocol on upgrade."""

    __slots__ = (
        "_waiter",
        "closing",
        "config",
        "connect_sent",
        "denial",
        "draining",
        "early",
        "fragments",
        "handshake",
        "messages",
        "phase",
        "ping_payload",
        "protocol",
        "request_line",
        "scope",
        "text",
        "timer",
        "ws",
    )

    def __init__(self, protocol: Connection, request: Request, scope: dict[str, Any],
                 config: Config) -> None:
        self.protocol = protocol
        self.config = config
        scope["extensions"] = {**(scope.get("extensions") or {}), "websocket.http.response": {}}
        self.scope = scope
        extensions = enable_server_permessage_deflate(None) if config.ws_per_message_deflate \
            else None
        self.ws = ServerProtocol(extensions=extensions, max_size=config.ws_max_size)
        self.handshake = _handshake_request(request)
        self.request_line = (request.method, request.http_version)
        self.phase = "handshake"
        self.connect_sent = False
        self.draining = False
        self.closing = False  # our close frame or EOF is out; the close timer runs
        self.early: list[bytes] = []  # bytes that arrived before the handshake was answered
        self.messages: deque[Message] = deque()
        self.fragments: list[bytes] = []
        self.text = False
        self.denial: tuple[HandshakeResponse, list[bytes]] | None = None
        self.ping_payload: bytes | None = None
        self.timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the protocol

    def data_received(self, data: bytes) -> None:
        if self.ws.state is CONNECTING:
            # RFC 6455 §4.1: the client waits for our 101 before it sends frames; hold what it
            # sent anyway until the app has answered, and read no more meanwhile.
            self.early.append(data)
            self.protocol.pause_reading()
            return
        self.ws.receive_data(data)
        self._handle_events()
        self._flush()
        if self.protocol.write_paused and not self.closing:
            self.protocol.pause_reading()  # until writing_resumed

    def writing_resumed(self) -> None:
        """The transport's buffer drained: read again, unless the app's queue is full."""
        if self.ws.state is OPEN and len(self.messages) <= LOW_WATER:
            self.protocol.resume_reading()

    def eof_received(self) -> None:
        if self.ws.state is CONNECTING:
            self.protocol.close()  # gone before the app answered: nothing left to say
        else:
            self.ws.receive_eof()
            self._flush()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._wake()

    def shutdown(self) -> None:
        """The worker drains: say "going away" (1001) now, or right after the app accepts."""
        self.draining = True
        if self.phase == "open" and self.ws.state is OPEN:
            self.ws.send_close(1001, "going away")
            self._flush()

    def _handle_events(self) -> None:
        for frame in self.ws.events_received():
            if not isinstance(frame, Frame):  # a parsed request: never, the engine parsed it
                continue
            if frame.opcode in _DATA:
                if not self._assemble(frame):
                    break
            elif frame.opcode is Opcode.PONG:
                self._pong(bytes(frame.data))
        self._wake()

    def _assemble(self, frame: Frame) -> bool:
        """Queue a complete message for the app; False if its text was not UTF-8 (then 1007)."""
        if frame.opcode is not Opcode.CONT:
            self.text = frame.opcode is Opcode.TEXT
        self.fragments.append(bytes(frame.data))
        if not frame.fin:
            return True
        data = self.fragments[0] if len(self.fragments) == 1 else b"".join(self.fragments)
        self.fragments = []
        message: Message
        if self.text:
            try:
                message = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self.ws.fail(1007, "invalid UTF-8 in a text message")
                return False
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self.messages.append(message)
        if len(self.messages) > HIGH_WATER:
            self.protocol.pause_reading()
        return True

    def _flush(self) -> None:
        """Write what the library produced; an empty chunk means close the TCP connection."""
        for data in self.ws.data_to_send():
            if data:
                self.protocol.write(data)
            else:
                self.protocol.close()  # RFC 6455 §7.1.1: the server closes TCP first
        if self.ws.close_expected() and not self.closing:
            self.closing = True
            self.protocol.resume_reading()  # the client's close frame must get through
            self._set_timer(CLOSE_TIMEOUT, self.protocol.abort)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- keep-alive

    def _schedule_ping(self) -> None:
        if self.config.ws_ping_interval > 0:
            self._set_timer(self.config.ws_ping_interval, self._ping)

    def _ping(self) -> None:
        if self.ws.state is not OPEN:
            return
        self.ping_payload = os.urandom(4)
        self.ws.send_ping(self.ping_payload)
        self._flush()
        if self.config.ws_ping_timeout > 0:
            self._set_timer(self.config.ws_ping_timeout, self._ping_timed_out)
        else:
            self._schedule_ping()

    def _pong(self, data: bytes) -> None:
        if data == self.ping_payload and self.ws.state is OPEN:
            self.ping_payload = None
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        if self.ws.state is OPEN:
            self.ws.fail(1011, "keepalive ping timeout")  # sends close, then drops TCP
            self._flush()
            self._wake()

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self.timer = self.protocol.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- the app's callables --------------------------------------------------------------------

    async def run(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            if not isinstance(exc, ClientDisconnected):
                log.error("Exception in ASGI application (WebSocket %s)",
                          escape(self.scope["path"]), exc_info=exc)
            self._end(1011)
        else:
            if self.phase in ("handshake", "response"):
                log.error("ASGI application returned without accepting or closing the "
                          "WebSocket: %s", escape(self.scope["path"]))
            self._end(1000)
        finally:
            self.protocol.session_finished()

    def _end(self, close_code: int) -> None:
        """What the app left unanswered: a 500 before the handshake, a close frame after it."""
        ws = self.ws
        if ws.state is CONNECTING and not ws.eof_sent and not self.protocol.closed:
            ws.send_response(ws.reject(500, "Internal Server Error\n"))
        elif ws.state is OPEN:
            ws.send_close(close_code)
        self.phase = "closed"
        self._flush()

    def _disconnected(self) -> bool:
        ws = self.ws
        return self.protocol.closed or ws.close_rcvd is not None or ws.eof_sent

    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while True:
            if self.messages:
                message = self.messages.popleft()
                if len(self.messages) <= LOW_WATER and self.ws.state is OPEN \
                        and not self.protocol.write_paused:
                    self.protocol.resume_reading()
                return message
            if self._disconnected():
                close = self.ws.close_rcvd or self.ws.close_sent or Close(ABNORMAL_CLOSURE, "")
                return {"type": "websocket.disconnect", "code": close.code,
                        "reason": close.reason}
            self._waiter = self.protocol.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.phase == "closed" or self.protocol.closed or (
                self.phase == "open" and self.ws.state is not OPEN):
            raise ClientDisconnected(f"cannot send {kind!r}: the WebSocket is closed")
        sender = _SENDERS.get((self.phase, kind))
        if sender is None:
            raise RuntimeError(f"unexpected ASGI message {kind!r} (WebSocket {self.phase})")
        sender(self, message)
        self._flush()
        await self.protocol.drain()

    # -- one method per (phase, message) in _SENDERS

    def _accept(self, message: Message) -> None:
        ws = self.ws
        subprotocol = message.get("subprotocol")
        ws.available_subprotocols = [Subprotocol(subprotocol)] if subprotocol else None
        response = self._refuse_request_line() or ws.accept(self.handshake)
        if response.status_code == 101:
            for name, value in message.get("headers") or ():
                response.headers[bytes(name).decode("latin-1")] = bytes(value).decode("latin-1")
        self._respond(response)
        if self.phase == "open":
            self._open()
        else:  # an invalid handshake: websockets chose the status (400, 405, …)
            log.debug("WebSocket handshake refused for %s: %s", self.protocol.client,
                      escape(str(ws.handshake_exc)))

    def _refuse_request_line(self) -> HandshakeResponse | None:
        """An upgrade must be a GET over HTTP/1.1 (RFC 6455 4.1). websockets checks that in
        accept() from release 17; the releases before it, the last for Python 3.10, see no
        request line, so they get the same answers here."""
        if _LIBRARY_CHECKS_REQUEST_LINE:
            return None
        method, version = self.request_line
        if method != b"GET":
            response = self.ws.reject(http.HTTPStatus.METHOD_NOT_ALLOWED,
                                      "Failed to open a WebSocket connection: invalid method.\n")
            response.headers["Allow"] = "GET"
            return response
        if version != b"1.1":
            return self.ws.reject(http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                                  "Failed to open a WebSocket connection: invalid protocol.\n")
        return None

    def _open(self) -> None:
        """The 101 is out: start reading frames, beginning with any the client sent early."""
        ws = self.ws
        # ServerProtocol expects to parse the request head itself; our engine already did, so
        # its parser is still waiting for one: restart it, now in the OPEN state (frames).
        ws.parser = ws.parse()
        next(ws.parser)
        early, self.early = b"".join(self.early), []
        if early:
            ws.receive_data(early)
            self._handle_events()
        if len(self.messages) <= LOW_WATER and not self.protocol.write_paused:
            self.protocol.resume_reading()
        self._schedule_ping()
        if self.draining and ws.state is OPEN:
            ws.send_close(1001, "going away")

    def _reject(self, message: Message) -> None:
        # ASGI: websocket.close before websocket.accept is an HTTP 403
        self._respond(self.ws.reject(403, ""))

    def _start_denial(self, message: Message) -> None:
        status = int(message["status"])
        if not 200 <= status <= 599:
            raise RuntimeError(f"a denial response needs a final status, not {status}")
        headers = Headers([(bytes(n).decode("latin-1"), bytes(v).decode("latin-1"))
                           for n, v in message.get("headers") or ()])
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self.denial = (HandshakeResponse(status, phrase, headers), [])
        self.phase = "response"

    def _send_denial_body(self, message: Message) -> None:
        assert self.denial is not None
        response, chunks = self.denial
        chunks.append(bytes(message.get("body", b"")))
        if message.get("more_body", False):
            return
        response.body = b"".join(chunks)
        if "Content-Length" not in response.headers:
            response.headers["Content-Length"] = str(len(response.body))
        response.headers["Connection"] = "close"
        self._respond(response)

    def _respond(self, response: HandshakeResponse) -> None:
        """Send the handshake answer; anything but a 101 ends the connection."""
        if self.config.server_header and "Server" not in response.headers:
            response.headers["Server"] = "prefork"
        self.ws.send_response(response)
        self.phase = "open" if response.status_code == 101 else "closed"

    def _send_message(self, message: Message) -> None:
        text = message.get("text")
        if text is not None:
            self.ws.send_text(text.encode())
        elif message.get("bytes") is not None:
            self.ws.send_binary(bytes(message["bytes"]))
        else:
            raise RuntimeError("'websocket.send' needs 'text' or 'bytes'")

    def _close(self, message: Message) -> None:
        self.ws.send_close(int(message.get("code") or 1000), message.get("reason") or "")
        self.phase = "closed"


_SENDERS: dict[tuple[str, str], Callable[[WebSocketCycle, Message], None]] = {
    ("handshake", "websocket.accept"): WebSocketCycle._accept,
    ("handshake", "websocket.close"): WebSocketCycle._reject,
    ("handshake", "websocket.http.response.start"): WebSocketCycle._start_denial,
    ("response", "websocket.http.response.body"): WebSocketCycle._send_denial_body,
    ("open", "websocket.send"): WebSocketCycle._send_message,
    ("open", "websocket.close"): WebSocketCycle._close,
}


_LIBRARY_CHECKS_REQUEST_LINE = "method" in {field.name
                                            for field in dataclasses.fields(HandshakeRequest)}


def _handshake_request(request: Request) -> HandshakeRequest:
    """The websockets library's view of the request head our engine already parsed."""
    headers = Headers([(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in request.headers])
    # passed as a mapping: mypy (and mypyc) read whichever release is installed, and before 17
    # these fields do not exist
    request_line: dict[str, Any] = {
        "method": request.method.decode("latin-1"),
        "protocol": "HTTP/" + request.http_version.decode("latin-1"),
    } if _LIBRARY_CHECKS_REQUEST_LINE else {}
    return HandshakeRequest(request.target.decode("latin-1"), headers, **request_line)

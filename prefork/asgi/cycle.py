"""One ASGI HTTP request/response cycle: the ``receive`` and ``send`` the app is given.

It translates ASGI messages into engine events (``prefork.http``) and hands the resulting bytes
to its transport owner (``prefork.workers.protocol``); it never touches a socket and knows
nothing of HTTP framing. Its states, in order: the response is not started, started, complete;
independently the request body is streaming, complete, or the client is gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from prefork.errors import ClientDisconnected, LocalProtocolError
from prefork.http.events import Data, EndOfMessage, Response

if TYPE_CHECKING:
    from prefork.workers.protocol import HttpProtocol

log = logging.getLogger("prefork.error")

RESPONSE_NOT_STARTED, RESPONSE_STARTED, RESPONSE_COMPLETE = 0, 1, 2
INTERNAL_ERROR_BODY = b"Internal Server Error"
INTERNAL_ERROR = Response(500, [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", b"21")])


class HttpCycle:
    """The app's view of one request; created by the protocol when a request head arrives."""

    __slots__ = (
        "_waiter",
        "body",
        "body_complete",
        "body_delivered",
        "body_size",
        "disconnected",
        "expect_continue",
        "head",
        "protocol",
        "response_state",
        "scope",
    )

    def __init__(self, protocol: HttpProtocol, scope: dict[str, Any],
                 expect_continue: bool) -> None:
        self.protocol = protocol
        self.scope = scope
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_complete = False
        self.body_delivered = False
        self.disconnected = False
        self.expect_continue = expect_continue
        self.response_state = RESPONSE_NOT_STARTED
        self.head: Response | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the protocol

    def body_received(self, data: bytes) -> None:
        self.body.append(data)
        self.body_size += len(data)
        self._wake()

    def request_complete(self) -> None:
        self.body_complete = True
        self._wake()

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the app's callables --------------------------------------------------------------------

    async def run(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            if isinstance(exc, ClientDisconnected) and self.disconnected:
                return
            log.error("Exception in ASGI application %s %s", self.scope["method"],
                      self.scope["path"], exc_info=exc)
            self._fail()
        else:
            if self.response_state == RESPONSE_NOT_STARTED and not self.disconnected:
                log.error("ASGI application returned without starting a response: %s %s",
                          self.scope["method"], self.scope["path"])
                self._fail()
            elif self.response_state == RESPONSE_STARTED and not self.disconnected:
                log.error("ASGI application returned before completing its response: %s %s",
                          self.scope["method"], self.scope["path"])
                self.protocol.abort()
        finally:
            self.protocol.cycle_finished(self)

    def _fail(self) -> None:
        """500 if nothing was sent yet; otherwise the only honest thing is to cut the connection."""
        if self.response_state != RESPONSE_COMPLETE and self.head is not None:
            self.response_state = RESPONSE_NOT_STARTED  # a head was stored but never written
        if self.response_state == RESPONSE_NOT_STARTED and not self.disconnected:
            self.protocol.conn.close_after_response()
            self._write_complete(INTERNAL_ERROR, INTERNAL_ERROR_BODY)
        elif self.response_state != RESPONSE_COMPLETE:
            self.protocol.abort()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.body:
                chunks, self.body = self.body, []
                size, self.body_size = self.body_size, 0
                self.protocol.body_consumed(size)
                self.body_delivered = self.body_complete
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return {"type": "http.request", "body": data, "more_body": not self.body_complete}
            if self.body_complete and not self.body_delivered:
                self.body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.disconnected or self.response_state == RESPONSE_COMPLETE:
                return {"type": "http.disconnect"}
            if self.expect_continue and not self.body_delivered:
                self.expect_continue = False
                self.protocol.send_continue()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        if self.response_state == RESPONSE_NOT_STARTED:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.head = Response(int(message["status"]),
                                 [(bytes(n), bytes(v)) for n, v in message.get("headers", ())])
            self.response_state = RESPONSE_STARTED
            return
        if self.response_state == RESPONSE_COMPLETE:
            raise RuntimeError(f"cannot send {kind!r}: the response is already complete")
        if kind != "http.response.body":
            raise RuntimeError(f"expected 'http.response.body', got {kind!r}")
        body = message.get("body", b"")
        conn = self.protocol.conn
        if self.head is not None:
            head, self.head = self.head, None
            if not message.get("more_body", False):
                self._write_complete(head, body)
                return
            self.protocol.write(self._serialise_head(head) + conn.send(Data(body)))
        elif message.get("more_body", False):
            self.protocol.write(conn.send(Data(body)))
        else:
            self._finish(conn.send(Data(body)) + conn.send(EndOfMessage()))
            return
        if self.response_state == RESPONSE_COMPLETE:
            raise RuntimeError("the response head was invalid; a 500 was sent instead")
        await self.protocol.drain()

    def _serialise_head(self, head: Response) -> bytes:
        try:
            return self.protocol.conn.send(head)
        except LocalProtocolError as exc:
            log.error("ASGI application sent an invalid response head: %s", exc)
            self.protocol.conn.close_after_response()
            self._write_complete(INTERNAL_ERROR, INTERNAL_ERROR_BODY)
            return b""

    def _write_complete(self, head: Response, body: bytes) -> None:
        data = self._serialise_head(head)
        if self.response_state == RESPONSE_COMPLETE:
            return  # the head was refused and a 500 went out in its place
        conn = self.protocol.conn
        self._finish(data + conn.send(Data(body)) + conn.send(EndOfMessage()))

    def _finish(self, data: bytes) -> None:
        self.response_state = RESPONSE_COMPLETE
        self.protocol.write(data)
        self.protocol.response_complete()
        self._wake()

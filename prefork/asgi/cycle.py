"""The ASGI interface of a worker (:class:`AsgiServing`) and one ASGI HTTP request/response
cycle: the ``receive`` and ``send`` the app is given.

It translates ASGI messages into engine events (``prefork.http``) and hands the resulting bytes
to its connection (``prefork.workers.contract.Connection``); it never touches a socket and
knows nothing of HTTP framing. Its states, in order: the response is not started, started, complete;
independently the request body is streaming, complete, or the client is gone.

``receive`` gives the body as ``http.request`` messages (``more_body`` until the last), then
waits; it answers ``http.disconnect`` only once the response is complete or the client left.
``send`` raises :class:`ClientDisconnected` (an ``OSError``) once the client left and
``RuntimeError`` for a message out of order, including anything after the response completed.
Extensions: ``http.response.pathsend``, ``http.response.zerocopysend`` (mixed with body
messages, chunked or with a ``Content-Length``), ``http.response.trailers`` (trailers reach the
wire only when the request said ``TE: trailers``; otherwise they are accepted and dropped),
``tls`` over TLS (``prefork.workers.tls_facts``) and, with ``--http1-early-hints``,
``http.response.early_hint`` (a ``103 Early Hints`` before the final head; never to an
HTTP/1.0 client, and ignored once the final head is out, as the spec allows).

The application can never break the wire, and each failure writes one record to
``prefork.error``:

* a head the engine refuses (CR/LF/NUL in a field, a bad status) is replaced by a 500; the
  app's ``send`` raises the engine's ``LocalProtocolError``;
* an exception (or a return) before the head went out is answered with a 500. The connection
  stays alive when the engine allows it (the request was read whole, or its rest is discarded):
  the failure is the app's, and the connection's framing is intact;
* after the head went out, an exception, a return before the end, or a body longer or shorter
  than its ``Content-Length`` aborts the connection, so the client sees a truncated message and
  never a well-formed wrong one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from typing import Any, ClassVar, Final, NoReturn

from prefork.asgi.ready import ASYNCIO_MARK, INSPECT_MARK, ready
from prefork.asgi.scope import http_scope, websocket_scope
from prefork.config import Config
from prefork.errors import ClientDisconnected, LocalProtocolError
from prefork.http.connection import NO_UPGRADE, WEBSOCKET_UPGRADE
from prefork.http.events import Data, EndOfMessage, Request, Response
from prefork.logs.escape import escape
from prefork.workers.contract import (
    RESPONSE_COMPLETE,
    RESPONSE_NOT_STARTED,
    RESPONSE_STARTED,
    Connection,
    Cycle,
    Serving,
    Upgraded,
)
from prefork.workers.response import (
    body_broke,
    with_length,
    write_file_body,
    write_internal_error,
    write_whole,
)

log = logging.getLogger("prefork.error")

# What to do with http.response.trailers messages: none announced, forward them, drop them.
_NO_TRAILERS: Final = 0
_FORWARD_TRAILERS: Final = 1
_DROP_TRAILERS: Final = 2

# The extensions' names, as the scope lists them and as their messages' types.
PATHSEND: Final = "http.response.pathsend"
ZEROCOPYSEND: Final = "http.response.zerocopysend"
TRAILERS: Final = "http.response.trailers"
EARLY_HINT: Final = "http.response.early_hint"
_EARLY_HINTS: Final = 103

_END: Final = EndOfMessage()
_DISCONNECT: Final = "http.disconnect"
# The empty list a cycle starts with for its body and trailers; never appended to (a cycle
# makes its own list first), so that a request without them allocates none.
_NOTHING: Final[list[Any]] = []


class AsgiServing(Serving):
    """The ASGI interface of a worker: an :class:`HttpCycle` per request, a WebSocket session
    per upgrade (when ``--ws`` allows them)."""

    def __init__(self, config: Config, lifespan_state: dict[str, Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.root_path = config.root_path
        self.lifespan_state = lifespan_state
        self.upgrades = WEBSOCKET_UPGRADE if config.ws != "none" else NO_UPGRADE
        self.forwarded_client = True
        # What a send that had nothing to wait for returns (prefork.asgi.ready).
        self.done = ready(loop, None)
        # The extensions every http scope names (copied into each); tls is the connection's.
        self.extensions: dict[str, Any] = {
            PATHSEND: {}, ZEROCOPYSEND: {}, TRAILERS: {},
        }
        # Early hints go to HTTP/2 clients always, to HTTP/1.1 clients only when asked for
        # (docs/serving.md says why), and never to HTTP/1.0 ones (RFC 9110 §15.2: no 1xx before
        # HTTP/1.1): each version its set, looked up only when the request is not HTTP/1.1.
        self.extensions_http10: dict[str, Any] = self.extensions.copy()
        self.extensions_http2: dict[str, Any] = {**self.extensions, EARLY_HINT: {}}
        if config.http1_early_hints:
            self.extensions[EARLY_HINT] = {}

    def cycle(self, connection: Connection, request: Request) -> Cycle:
        extensions = self.extensions
        version = request.http_version
        if version != b"1.1":
            extensions = self.extensions_http2 if version == b"2" else self.extensions_http10
        scope = http_scope(request, connection.scheme, connection.client, connection.server,
                           self.root_path, self.lifespan_state, extensions, connection.tls)
        return HttpCycle(connection, scope, request.expect_continue, self.done)

    def upgrade(self, connection: Connection, request: Request) -> Upgraded:
        # Imported on the first upgrade: the websockets library is not needed before.
        from prefork.asgi.websocket import WebSocketCycle

        scheme = "wss" if connection.scheme == "https" else "ws"
        scope = websocket_scope(request, scheme=scheme, client=connection.client,
                                server=connection.server, root_path=self.root_path,
                                state=self.lifespan_state, tls=connection.tls)
        return WebSocketCycle(connection, request, scope, self.config)


class HttpCycle(Cycle):
    """The app's view of one request; created by the protocol when a request head arrives.

    The cycle is itself the ``send`` the app is given (``__call__``), marked as a coroutine
    function as :class:`Receive` is (``prefork.asgi.ready``)."""

    _is_coroutine: ClassVar[object] = ASYNCIO_MARK
    _is_coroutine_marker: ClassVar[object] = INSPECT_MARK

    __slots__ = (
        "_waiter",
        "awaiting_trailers",
        "body",
        "body_complete",
        "body_delivered",
        "buffered",
        "disconnected",
        "done",
        "expect_continue",
        "failed",
        "head",
        "peer_closed",
        "protocol",
        "response_state",
        "scope",
        "task",
        "trailer_fields",
        "trailers",
    )

    def __init__(self, protocol: Connection, scope: dict[str, Any],
                 expect_continue: bool, done: Awaitable[None]) -> None:
        self.protocol = protocol
        self.done = done
        self.scope = scope
        self.body = _NOTHING  # a list of its own once a piece arrives
        self.buffered = 0
        self.body_complete = False
        self.body_delivered = False
        self.disconnected = False
        self.peer_closed = False  # EOF after a complete request: maybe only a half-close
        self.expect_continue = expect_continue
        self.response_state = RESPONSE_NOT_STARTED
        self.head: Response | None = None  # from http.response.start, written with the body
        self.trailers = _NO_TRAILERS
        self.trailer_fields: list[tuple[bytes, bytes]] = _NOTHING  # made when forwarded
        self.awaiting_trailers = False  # the body ended; trailers messages come next
        self.failed = False  # the failure was logged and answered already
        self.task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def body_size(self) -> int:
        return self.buffered

    # -- fed by the protocol --------------------------------------------------------------------

    def body_received(self, data: bytes) -> None:
        body = self.body
        if body is _NOTHING:
            self.body = [data]
        else:
            body.append(data)
        self.buffered += len(data)
        if self._waiter is not None:
            self._wake()

    def request_complete(self) -> None:
        self.body_complete = True
        if self._waiter is not None:
            self._wake()

    def client_finished_sending(self) -> None:
        """EOF after a complete request. It may be a half-close, so the response still goes
        out, but the client will never send more: an app waiting in ``receive`` is told it
        left (otherwise a long poll would outlive a client that closed)."""
        self.peer_closed = True
        self._wake()

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- running the app ------------------------------------------------------------------------

    async def begin(self, app: Any) -> None:
        """The coroutine the protocol starts for this cycle (``prefork.workers.eager``): the app
        sees one task as ``asyncio.current_task()`` from its first step to its last, as cancel
        scopes and timeouts need, though no task is made for it unless it waits."""
        try:
            await app(self.scope, Receive(self), self)
        except Exception as exc:
            if not self.failed and not (self.disconnected and isinstance(exc, OSError)):
                log.error("Exception in ASGI application (%s)", self._label(), exc_info=exc)
                self._fail()
        else:
            if self.response_state != RESPONSE_COMPLETE and not self.disconnected \
                    and not self.peer_closed:  # it was told the client left: it may stop
                log.error("ASGI application returned without completing its response (%s)",
                          self._label())
                self._fail()
        finally:
            self.protocol.cycle_finished(self)

    def _fail(self) -> None:
        """500 if nothing was written yet; otherwise the only honest thing is to cut the
        connection."""
        self.failed = True
        if self.disconnected or self.response_state == RESPONSE_COMPLETE:
            return
        if self.response_state == RESPONSE_NOT_STARTED or self.head is not None:
            self.head = None
            self.trailers = _NO_TRAILERS
            if write_internal_error(self.protocol):
                self._completed()
            else:
                self.response_state = RESPONSE_COMPLETE
        else:
            self.response_state = RESPONSE_COMPLETE
            self.protocol.abort()

    # -- the app's callables --------------------------------------------------------------------

    def receive(self) -> Awaitable[dict[str, Any]]:
        """The app's ``receive``: a :class:`Ready` when a message is ready, else a coroutine
        that waits for one."""
        message = self._take()
        if message is None:
            return self._receive_later()
        return ready(self.protocol.loop, message)

    async def _receive_later(self) -> dict[str, Any]:
        while True:
            if self.expect_continue:
                self.expect_continue = False
                self.protocol.send_continue()  # RFC 9110 §10.1.1: only once the body is wanted
            self._waiter = self.protocol.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            message = self._take()
            if message is not None:
                return message

    def _take(self) -> dict[str, Any] | None:
        """The next message for ``receive`` if one is ready."""
        if self.body:
            chunks, self.body = self.body, _NOTHING
            size, self.buffered = self.buffered, 0
            protocol = self.protocol
            if protocol.reading_paused:  # only then is there anything to resume
                protocol.body_consumed(size)
            self.body_delivered = self.body_complete
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            return {"type": "http.request", "body": data, "more_body": not self.body_complete}
        if self.body_complete and not self.body_delivered:
            self.body_delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.disconnected or self.peer_closed or self.response_state == RESPONSE_COMPLETE:
            return {"type": _DISCONNECT}
        return None

    def __call__(self, message: Any) -> Awaitable[None]:
        """The app's ``send``: the cycle itself, so that a send costs one call. A message that
        needs no waiting is handled by the call itself, which returns the worker's completed
        :class:`Ready`; one that must wait for the client returns a coroutine. ``message`` is
        typed Any as the app's argument: a compiled build (setup.py) then fails a bad one where
        the interpreter does."""
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        # Read as a dict, which an ASGI message is: a compiled build then reads its keys with
        # dict operations instead of calling methods on an object of any type.
        fields: dict[str, Any] = message if isinstance(message, dict) else _as_message(message)
        kind = fields["type"]
        state = self.response_state
        if state == RESPONSE_STARTED and kind == "http.response.body" and \
                not self.awaiting_trailers:
            body = fields.get("body", b"")
            if type(body) is not bytes:
                body = _as_bytes(body)
            if not fields.get("more_body", False):
                if self.trailers == _NO_TRAILERS:
                    head = self.head
                    if head is not None:  # the whole response in one message: one engine call
                        self.head = None
                        try:
                            write_whole(self.protocol, head, body)
                        except (LocalProtocolError, TypeError, ValueError) as exc:
                            self._refused(exc)
                        self._completed()
                    else:
                        self._complete(self._body(body, True))
                    return self.done
                self.awaiting_trailers = True
            protocol = self.protocol
            protocol.write(self._body(body, False))
            if protocol.write_paused:
                return protocol.drain()
        elif state == RESPONSE_NOT_STARTED and kind == "http.response.start":
            headers = fields.get("headers", ())
            if type(headers) is not list and type(headers) is not tuple:
                headers = list(headers)
            self.head = Response(fields["status"], headers)
            if fields.get("trailers", False):
                self.trailers = _FORWARD_TRAILERS if self._can_send_trailers(headers) \
                    else _DROP_TRAILERS
            self.response_state = RESPONSE_STARTED
        elif state == RESPONSE_STARTED and kind == "http.response.trailers" and self.trailers:
            if not self.awaiting_trailers:
                raise RuntimeError("'http.response.trailers' before the last body message")
            if self.trailers == _FORWARD_TRAILERS:
                if self.trailer_fields is _NOTHING:
                    self.trailer_fields = []
                self.trailer_fields.extend(fields.get("headers", ()))
            if not fields.get("more_trailers", False):
                sent = self.trailer_fields
                self._complete(self._end(EndOfMessage(sent) if sent else _END))
        elif state == RESPONSE_STARTED and kind == PATHSEND and \
                self.head is not None:
            return self._send_path(fields["path"])
        elif state == RESPONSE_STARTED and kind == ZEROCOPYSEND and not self.awaiting_trailers:
            return self._send_zero_copy(fields)
        elif kind == EARLY_HINT and state != RESPONSE_COMPLETE:
            self._early_hint(fields)
        elif state == RESPONSE_COMPLETE:
            raise RuntimeError(f"cannot send {kind!r}: the response is already complete")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} "
                               f"({'before' if state == RESPONSE_NOT_STARTED else 'after'} "
                               "http.response.start)")
        return self.done

    # -- turning messages into bytes ------------------------------------------------------------

    def _body(self, body: bytes, last: bool) -> bytes:
        """The bytes for a body message: the stored head first if it was not written yet."""
        conn = self.protocol.conn
        head = self.head
        out = b""
        if head is not None:
            self.head = None
            out = self._serialise_head(head)
        try:
            out += conn.send(Data(body))
        except LocalProtocolError as exc:
            self._broken(exc)
        return self._end(_END, out) if last else out

    def _end(self, end: EndOfMessage, out: bytes = b"") -> bytes:
        try:
            return out + self.protocol.conn.send(end)
        except LocalProtocolError as exc:
            self._broken(exc)

    def _refused(self, exc: Exception) -> NoReturn:
        """The engine refused a one-message response (``send_whole``/``send_apart``)."""
        if isinstance(exc, LocalProtocolError) and body_broke(self.protocol):
            self._broken(exc)  # the head was fine; the body broke its length
        self._bad_head(exc)

    def _serialise_head(self, head: Response) -> bytes:
        try:
            return self.protocol.conn.send(head)
        except (LocalProtocolError, TypeError, ValueError) as exc:
            self._bad_head(exc)

    def _label(self) -> str:
        """The request in an error line, escaped: the path is percent-decoded, so it may hold
        any character a client chose (see prefork.logs.escape)."""
        scope = self.scope
        return f"{escape(str(scope.get('method', '')))} {escape(str(scope.get('path', '')))}"

    def _bad_head(self, exc: Exception) -> NoReturn:
        # Nothing was emitted (see ServerConnection): a 500 can still take its place.
        log.error("ASGI application sent an invalid response head (%s): %s", self._label(),
                  escape(str(exc)))
        self.response_state = RESPONSE_NOT_STARTED
        self._fail()
        if isinstance(exc, LocalProtocolError):
            raise exc
        raise LocalProtocolError(f"invalid response head: {exc}", 500) from exc

    def _broken(self, exc: LocalProtocolError) -> NoReturn:
        """The body broke its framing: the head may be out already, so cut the connection."""
        log.error("ASGI application broke its response (%s): %s", self._label(),
                  escape(str(exc)))
        self.failed = True
        self.response_state = RESPONSE_COMPLETE
        self.protocol.abort()
        raise exc

    def _complete(self, data: bytes) -> None:
        self.protocol.write(data)
        self._completed()

    def _completed(self) -> None:
        """The response's last byte was written."""
        self.response_state = RESPONSE_COMPLETE
        self.protocol.response_complete()
        if self._waiter is not None:
            self._wake()

    def _can_send_trailers(self, headers: Any) -> bool:
        """Over HTTP/1.1 trailers need a chunked body (no Content-Length) and a client that
        asked for them (RFC 9110 §6.5.1: ``TE: trailers``); HTTP/2 frames them always."""
        version = self.scope["http_version"]
        if version == "2":
            return True
        if version != "1.1":
            return False
        for name, _ in headers:
            if isinstance(name, bytes) and name.lower() == b"content-length":
                return False
        for name, value in self.scope["headers"]:
            if name == b"te" and b"trailers" in value.lower():
                return True
        return False

    async def _send_path(self, path: str) -> None:
        """``http.response.pathsend``: the file's bytes go out through ``sendfile`` where the
        loop supports it; its size is the ``Content-Length``."""
        head = self.head
        assert head is not None
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            self.head = None
            out = self._serialise_head(with_length(head, size))
            try:
                whole = await write_file_body(self.protocol, out, file, size)
            except OSError:
                if self.disconnected:
                    raise ClientDisconnected("the client disconnected") from None
                raise
            if not whole:
                self._broken(LocalProtocolError(f"{path} shrank while it was sent", 500))
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        self._complete(self._end(_END))

    async def _send_zero_copy(self, message: Any) -> None:
        """``http.response.zerocopysend``: ``count`` bytes of the message's file from ``offset``
        (by default from the file's position to its end, and the position then moves past
        them, as ``os.sendfile`` without an offset would leave it) go out through the
        connection's ``send_file``: ``sendfile`` in cleartext, reads over TLS. A body message
        of its own in every other respect: chunked or held to the ``Content-Length``,
        ``more_body`` as in ``http.response.body``."""
        file = message["file"]
        size = os.fstat(file.fileno()).st_size
        offset = message.get("offset")
        from_position = offset is None
        if from_position:
            offset = file.tell()
        count = message.get("count")
        if type(offset) is not int or offset < 0 or \
                (count is not None and (type(count) is not int or count < 0)):
            raise ValueError("the offset and count of http.response.zerocopysend must be "
                             "integers of at least 0")
        left = max(size - offset, 0)  # sendfile(2) stops at the end of the file
        count = left if count is None else min(count, left)
        protocol = self.protocol
        head = self.head
        out = b""
        if head is not None:
            self.head = None
            out = self._serialise_head(head)
        try:
            framing = protocol.conn.frame_body_elsewhere(count)
        except LocalProtocolError as exc:
            self._broken(exc)  # longer than its Content-Length
        if framing is not None and count:
            before, after = framing
            protocol.write(out + before)
            out = after
            try:
                sent = await protocol.send_file(file, count, offset)
            except OSError:
                if self.disconnected:
                    raise ClientDisconnected("the client disconnected") from None
                raise
            if sent != count:
                self._broken(LocalProtocolError("the file shrank while it was sent", 500))
        if from_position:
            file.seek(offset + count)
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        if message.get("more_body", False):
            protocol.write(out)
            if protocol.write_paused:
                await protocol.drain()
        elif self.trailers != _NO_TRAILERS:
            self.awaiting_trailers = True
            protocol.write(out)
        else:
            self._complete(self._end(_END, out))

    def _early_hint(self, message: Any) -> None:
        """``http.response.early_hint``: a ``103 Early Hints`` with one ``Link`` field per
        link, while the final head is still unwritten (before ``http.response.start`` or
        after it, until the first body message). Ignored, as the spec lets a server, where the
        scope does not offer the extension (HTTP/1.1 without ``--http1-early-hints``,
        HTTP/1.0 always) and once the final head is out."""
        scope = self.scope
        if (self.response_state == RESPONSE_STARTED and self.head is None) or \
                EARLY_HINT not in scope["extensions"] or scope["http_version"] == "1.0":
            return
        fields = [(b"link", link) for link in message["links"]]
        if fields:
            self.protocol.send_informational(_EARLY_HINTS, fields)


class Receive:
    """The ``receive`` an app is given: :meth:`HttpCycle.receive`, marked as a coroutine
    function (``prefork.asgi.ready``). Not a bound method: a compiled class's methods cannot
    carry the mark."""

    __slots__ = ("cycle",)
    _is_coroutine: ClassVar[object] = ASYNCIO_MARK
    _is_coroutine_marker: ClassVar[object] = INSPECT_MARK

    def __init__(self, cycle: HttpCycle) -> None:
        self.cycle = cycle

    def __call__(self) -> Awaitable[dict[str, Any]]:
        return self.cycle.receive()


def _as_message(message: Any) -> dict[str, Any]:
    """A message that is not a dict, as one: any mapping passes (as it would through its own
    ``[]`` and ``get``), anything else is refused as the spec's dict."""
    try:
        return dict(message)
    except (TypeError, ValueError):
        raise TypeError(f"an ASGI message must be a dict, not {type(message).__name__}") \
            from None


def _as_bytes(body: Any) -> bytes:
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"the body of an http.response.body message must be bytes, "
                    f"not {type(body).__name__}")

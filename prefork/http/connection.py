"""ServerConnection: one HTTP/1.1 connection as a sans-I/O state machine.

Bytes go in with :meth:`receive_data`, request events come out of :meth:`next_event`; response
events go in with :meth:`send` and bytes come out. Both directions move through the transition
tables below (h11's model); a side that finished its message is DONE, or MUST_CLOSE when the
connection will not be reused. Parsing is lazy: received bytes are only tokenised when the current
request needs events, so a pipelined request waits, as bytes, until :meth:`start_next_cycle`.

The meaning of a request head (framing, limits, Host, version, keep-alive, upgrade) is decided in
:meth:`on_head` for both parser backends; the backends only tokenise (see ``parsers``).

Notes for the I/O layer:

* ``ConnectionClosed`` is returned once the peer's EOF has been reached. If it arrives with
  ``their_state`` still ``IDLE`` (part of a head was received) or ``SEND_BODY``, the request was
  cut short; after a complete request ``their_state`` is ``CLOSED``.
* A response may complete before the request body did. The connection can still be reused: keep
  calling ``next_event`` and drop the ``Data`` until ``EndOfMessage``, then ``start_next_cycle``
  (or close, if the rest is too large to wait for). A final response to a client still waiting
  for ``100 Continue`` closes the connection instead (RFC 9110 §10.1.1), since it may never send it.
* A request that switches protocols (``Upgrade`` to a protocol in ``upgrades``, with
  ``Connection: upgrade``, or ``CONNECT``) ends at its head; what follows is
  :attr:`trailing_data`, never parsed as HTTP, and the connection is not reused for HTTP. Any
  other ``Upgrade`` is ignored: an ordinary request, body included, after which the connection
  closes.
* After ``send`` raised LocalProtocolError for a bad ``Response``, nothing was emitted and
  :meth:`error_response` can still answer 500; a body over- or under-run leaves our side in
  ``ERROR`` and the connection must be closed.
* A one-piece response is one call: :meth:`send_whole` joins head and body into one buffer,
  :meth:`send_apart` hands them back apart, for a body of ``JOIN_LIMIT`` bytes or more that
  is cheaper to write beside its head (a vectored write) than to copy.

This module does no I/O; the clock is injected.

It runs a little over 600 lines: the receiving and sending state tables and their checks are
one object's invariants, and splitting them would only pass private state between modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from prefork.errors import ConfigError, LocalProtocolError, ProtocolError, RemoteProtocolError
from prefork.http import framing
from prefork.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
    Sentinel,
)
from prefork.http.framing import CLOSE_DELIMITED, CONTENT_LENGTH
from prefork.http.headers import (
    REASONS,
    DateCache,
    check_value,
    encode_fields,
    field_tokens,
    status_line,
)
from prefork.http.limits import Limits
from prefork.http.parsers import Sink, Tokenizer, load_backend
from prefork.http.response_head import app_head
from prefork.http.targets import CHECKED_HOSTS, check_host, check_target

__all__ = [
    "CLOSED",
    "DONE",
    "ERROR",
    "H2C_UPGRADE",
    "IDLE",
    "JOIN_LIMIT",
    "MUST_CLOSE",
    "NO_TOKENIZER",
    "NO_UPGRADE",
    "SEND_BODY",
    "WEBSOCKET_UPGRADE",
    "ServerConnection",
]

IDLE: Final = "IDLE"
SEND_BODY: Final = "SEND_BODY"
DONE: Final = "DONE"
MUST_CLOSE: Final = "MUST_CLOSE"  # reported for DONE when the connection will not be reused
CLOSED: Final = "CLOSED"
ERROR: Final = "ERROR"

# (state, event type) -> next state. A pair that is missing is a protocol violation.
_THEIR_TRANSITIONS: Final[dict[tuple[str, type], str]] = {
    (IDLE, Request): SEND_BODY,
    (SEND_BODY, Data): SEND_BODY,
    (SEND_BODY, EndOfMessage): DONE,
}
_OUR_TRANSITIONS: Final[dict[tuple[str, type], str]] = {
    (IDLE, InformationalResponse): IDLE,
    (IDLE, Response): SEND_BODY,
    (SEND_BODY, Data): SEND_BODY,
    (SEND_BODY, EndOfMessage): DONE,
}

_END: Final = EndOfMessage()
_CLOSED_EVENT: Final = ConnectionClosed()
# The request fields the engine reads, and those a proxy forwards the client's origin in
# (read by prefork.proxy; the engine only notes that one is there, in the same pass).
_FORWARDING_FIELDS: Final = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
_REQUEST_FIELDS: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}
) | _FORWARDING_FIELDS
_PARSER_NAMES: Final = ("httptools", "h11")
# The backends' tokenizer classes by name, as load_backend gives them, kept here so that making a
# connection's tokenizer is a compiled call of the class (load_backend's module is interpreted,
# and a call into it cost each connection an interpreter frame: 1.1k instructions).
_BACKENDS: Final[dict[str, Callable[[Sink, Limits], Tokenizer]]] = {}

# The protocols a connection switches to when asked (Upgrade with Connection: upgrade); any
# other Upgrade is ignored. WebSocket is the only one an ASGI server offers.
WEBSOCKET_UPGRADE: Final = frozenset({b"websocket"})
# HTTP/2 over cleartext by Upgrade (``--http2``): switched to only for a request without a body,
# which is then answered as the new protocol's first stream.
H2C_UPGRADE: Final = frozenset({b"h2c"})
NO_UPGRADE: Final = frozenset[bytes]()
_NONE: Final[list[bytes]] = []  # shared empty list, never mutated
_CLOSE_LINE: Final = b"connection: close\r\n"
_KEEP_ALIVE_LINE: Final = b"connection: keep-alive\r\n"
# Advice for the I/O layer: a body of at least this many bytes costs more to copy into one
# buffer with its head than to write beside it (uvloop's writelines is one writev). Measured
# per response over a socket pair: joining saves 0.1 µs of CPU at 4 KiB, writing apart saves
# 0.3 µs at 16 KiB and 3 µs at 64 KiB. See send_apart.
JOIN_LIMIT: Final = 16 * 1024

Event = Request | Data | EndOfMessage | ConnectionClosed | Sentinel
_Queued = Request | Data | EndOfMessage | RemoteProtocolError


def _server_line(value: bytes) -> bytes:
    """The ``Server`` field line; checked once per value, not once per connection."""
    line = _SERVER_LINES.get(value)
    if line is None:
        try:
            check_value(value)
        except LocalProtocolError:
            raise ConfigError(f"server_header is not a valid field value: {value!r}") from None
        line = _SERVER_LINES[value] = b"server: " + value + b"\r\n"
    return line


_SERVER_LINES: Final[dict[bytes, bytes]] = {}  # a worker has one value; tests a few


class ServerConnection:
    """The server side of one HTTP/1.1 connection. See the module docstring for the contract."""

    __slots__ = (
        "_blocked", "_body_budget", "_chunks", "_closing", "_date", "_dead", "_eof", "_error",
        "_head_request", "_http11", "_keep_alive", "_limits", "_our", "_queue", "_queued_bytes",
        "_raw_len", "_request", "_server_line", "_switching", "_taken", "_their", "_tokenizer",
        "_upgrades", "_waiting_100", "_writer", "body_sent", "response",
    )  # fmt: skip

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        parser: str = "httptools",
        server_header: bytes | None = b"prefork",
        date_header: bool = True,
        clock: Callable[[], float] = time.time,
        date_cache: DateCache | None = None,
        upgrades: frozenset[bytes] = WEBSOCKET_UPGRADE,
    ) -> None:
        backend = _BACKENDS.get(parser)
        if backend is None:
            if parser not in _PARSER_NAMES:
                raise ConfigError(
                    f"parser must be one of {', '.join(_PARSER_NAMES)}, got {parser!r}")
            backend = _BACKENDS[parser] = load_backend(parser)
        self._limits = limits if limits is not None else Limits()
        self._server_line = _server_line(server_header) if server_header else b""
        self._date = (date_cache or DateCache(clock)) if date_header else None
        self._upgrades = upgrades
        self._tokenizer = backend(self, self._limits)
        self._writer = framing.BodyWriter()
        self.response: Response | None = None  # the last response head sent
        self.body_sent = 0  # body bytes of that response that went (or go, by sendfile) out
        # The events of one feed, taken from the front (_taken of them so far); a feed happens
        # only once they are all taken, when the list is emptied. A list, not a deque: its
        # operations are compiled ones, where a deque's are method calls (0.6k instructions a
        # request), and making it costs a connection no call into the collections module.
        self._queue: list[_Queued] = []
        self._taken = 0
        self._chunks: list[bytes] = []
        self._raw_len = 0
        self._queued_bytes = 0
        self._their = IDLE
        self._our = IDLE
        self._request: Request | None = None
        self._keep_alive = True
        self._closing = False
        self._switching = False
        self._waiting_100 = False
        self._head_request = False
        self._http11 = True
        self._eof = False
        self._blocked = False
        self._dead = False
        self._error: RemoteProtocolError | None = None
        self._body_budget: int | None = None

    # --- state ---------------------------------------------------------------------------------

    @property
    def their_state(self) -> str:
        state = self._their
        return MUST_CLOSE if state is DONE and not self._keep_alive else state

    @property
    def our_state(self) -> str:
        state = self._our
        return MUST_CLOSE if state is DONE and not self._keep_alive else state

    @property
    def keep_alive(self) -> bool:
        """Whether the connection will be reused after this cycle, as far as is known now."""
        return self._keep_alive

    @property
    def client_is_waiting_for_100_continue(self) -> bool:
        return self._waiting_100

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not yet consumed as events; pause reading above ``max_buffer``."""
        return self._raw_len + self._queued_bytes

    @property
    def trailing_data(self) -> bytes:
        """The bytes after a protocol-switching request head, for the protocol that takes over."""
        return b"".join(self._chunks) if self._switching else b""

    @property
    def limits(self) -> Limits:
        return self._limits

    def close_after_response(self) -> None:
        """Do not reuse the connection after the current response (and never again)."""
        self._closing = True
        self._keep_alive = False

    # --- receiving -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` means it closed its sending side."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("received data after EOF")
        their = self._their
        if self._dead or their is ERROR or their is CLOSED:
            return
        if their is DONE and not self._keep_alive and not self._switching:
            return  # nothing after this request will be read
        self._chunks.append(data)
        self._raw_len += len(data)

    def receive_request(self, data: bytes) -> tuple[Request, bytes] | None:
        """:meth:`receive_data`, and when ``data`` is exactly one whole request (the usual GET on
        a kept connection, or a POST whose body came in the same segment, in one piece of at
        most ``max_buffer`` bytes), take all its events at once: returns the request and its
        body (``b""`` for none), with their side ``DONE`` as after the :meth:`next_event` calls.
        Otherwise (a partial request, pipelined requests, a body in pieces, trailers, an
        upgrade, ``Expect: 100-continue``, an error) returns None, and the events wait for
        ``next_event`` as usual."""
        if self._their is not IDLE or self._queue or self._chunks or self._blocked or \
                self._eof or not data:
            self.receive_data(data)
            return None
        try:
            self._tokenizer.feed(data)  # what _feed does with one chunk
        except RemoteProtocolError as exc:
            self._queue.append(exc)
            self._dead = True
            self._blocked = True
            return None
        queue = self._queue
        count = len(queue)
        if count < 2 or queue[-1] is not _END or self._switching or self._chunks:
            return None
        request = queue[0]
        if type(request) is not Request:
            return None
        if count == 2:
            body = b""
        elif count == 3 and type(queue[1]) is Data and not request.expect_continue:
            body = queue[1].data
            if len(body) > self._limits.max_buffer:
                return None  # the long way, which pauses reading until the app takes it
            self._queued_bytes -= len(body)
        else:
            return None
        queue.clear()
        self._start_request(request)
        self._their = DONE
        return request, body

    def next_event(self) -> Event:
        their = self._their
        if their is SEND_BODY or their is IDLE:
            queue = self._queue
            if not queue and self._chunks and not self._blocked:
                self._feed()
            if queue:
                taken = self._taken
                event = queue[taken]
                taken += 1
                if taken == len(queue):
                    queue.clear()
                    taken = 0
                self._taken = taken
                kind = type(event)
                if kind is Data:
                    self._queued_bytes -= len(event.data)  # type: ignore[union-attr]  # kind is Data
                    self._waiting_100 = False
                elif kind is Request:
                    self._start_request(event)  # type: ignore[arg-type]  # kind is Request
                elif kind is EndOfMessage:
                    self._waiting_100 = False
                else:
                    assert isinstance(event, RemoteProtocolError)
                    self._fail_remote(event)
                    raise event
                self._their = _THEIR_TRANSITIONS[their, kind]
                return event  # type: ignore[return-value]  # errors were raised above
            if self._eof:
                self._keep_alive = False
                if their is IDLE and not self._tokenizer.in_head:
                    self._their = CLOSED
                return _CLOSED_EVENT
            return NEED_DATA
        if their is DONE:
            if self._keep_alive and (self._queue or self._chunks):
                return PAUSED
            if self._eof:
                self._their = CLOSED
                self._keep_alive = False
                return _CLOSED_EVENT
            return NEED_DATA
        if their is ERROR:
            assert self._error is not None
            raise self._error
        return _CLOSED_EVENT

    def _feed(self) -> None:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._raw_len = 0
        try:
            self._tokenizer.feed(data)
        except RemoteProtocolError as exc:
            # Events parsed before the error are still delivered, then the error is raised.
            self._queue.append(exc)
            self._dead = True
            self._blocked = True
            chunks.clear()
            self._raw_len = 0

    def _start_request(self, request: Request) -> None:
        self._request = request
        self._head_request = request.method == b"HEAD"
        self._http11 = request.http_version == b"1.1"
        switching = request.upgrade is not None or request.method == b"CONNECT"
        self._keep_alive = request.keep_alive and not switching and not self._closing
        # If anything of the body is already queued behind the head, the client is not waiting.
        self._waiting_100 = request.expect_continue and not self._queue

    def _fail_remote(self, exc: RemoteProtocolError) -> None:
        self._their = ERROR
        self._error = exc
        self._keep_alive = False
        self._queue.clear()
        self._taken = 0
        self._queued_bytes = 0

    # --- the backends' sink -----------------------------------------------------------------

    def on_head(
        self, method: bytes, target: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """Validate a request head from a backend and queue its Request (see parsers.Sink)."""
        limits = self._limits
        if http_version != b"1.1" and http_version != b"1.0":
            if http_version[:1] in (b"0", b""):
                raise RemoteProtocolError(f"bad HTTP version {http_version!r}", 400)
            raise RemoteProtocolError(f"unsupported HTTP version {http_version!r}", 505)
        if len(method) + len(target) + 10 > limits.max_request_line:
            raise RemoteProtocolError("request line too long", 414)
        if len(headers) > limits.max_headers:
            raise RemoteProtocolError("too many header fields", 431)
        http11 = http_version == b"1.1"
        # One pass over the names: most are none of the six read here, and a set lookup each
        # costs less than building a dict of them all (11.0k instructions for the bench's
        # six-field head against 12.9k with dict() and six gets).
        hosts = 0
        lengths = codings = connections = _NONE
        # the usual single Connection field is kept as it is: no list made for it
        connection: bytes | None = None
        expect = upgrade = None
        forwarded = False
        for name, value in headers:
            if name in _REQUEST_FIELDS:
                if name == b"host":
                    hosts += 1
                    if value not in CHECKED_HOSTS:
                        check_host(value)
                elif name == b"connection":
                    if connection is None:
                        connection = value
                    else:
                        connections = [*(connections or [connection]), value]
                elif name == b"content-length":
                    lengths = [value] if lengths is _NONE else [*lengths, value]
                elif name == b"transfer-encoding":
                    codings = [value] if codings is _NONE else [*codings, value]
                elif name == b"expect":
                    expect = value
                elif name == b"upgrade":
                    upgrade = value
                else:
                    forwarded = True
        if hosts != 1 and (hosts or http11):  # RFC 9112 §3.2: exactly one Host in HTTP/1.1
            raise RemoteProtocolError("missing Host" if not hosts else "repeated Host", 400)
        if not target or target[0] != 0x2F:  # not origin-form ("/"): rare, checked apart
            authority = check_target(method, target)
            if authority is not None:
                _replace_host(headers, authority)
        length = (
            framing.request_body_length(lengths, codings, http_version)
            if (lengths or codings)
            else 0
        )
        max_body = limits.max_body_size
        if max_body is not None and length > max_body:
            raise RemoteProtocolError("request body too large", 413)
        if connection is None:
            keep_alive = http11
            upgrade_token = False
        else:
            single = connection if connections is _NONE else None
            if single is not None and single != b"close" and single != b"keep-alive":
                single = single.lower()  # as most clients spell them, they need no lowering
            if single == b"keep-alive":
                keep_alive, upgrade_token = True, False
            elif single == b"close":
                keep_alive, upgrade_token = False, False
            else:
                tokens = field_tokens([connection] if connections is _NONE else connections)
                keep_alive = b"close" not in tokens if http11 else b"keep-alive" in tokens
                upgrade_token = b"upgrade" in tokens
        upgrade_value = upgrade.lower() if upgrade and upgrade_token else None
        if upgrade_value is not None and (upgrade_value not in self._upgrades or (
                length != 0 and upgrade_value == b"h2c")):
            # A protocol this connection cannot switch to (h2c without --http2, or with a
            # body, which HTTP/2 would have to take over mid-message; a WebSocket under
            # WSGI): an ordinary request, body included (RFC 9110 §7.8 lets a server
            # ignore Upgrade); the connection closes after it, since llhttp reads nothing
            # past a message that asked to switch.
            upgrade_value = None
            keep_alive = False
            if length == framing.CHUNKED_BODY:  # llhttp stops before it; only it decodes chunks
                raise RemoteProtocolError("a chunked body with an Upgrade this server declines",
                                          400)
        switching = upgrade_value is not None or method == b"CONNECT"
        if switching and method == b"CONNECT" and target[:1] == b"/":
            check_target(method, target)  # refuses it: CONNECT names an authority
        expect_continue = (
            expect is not None
            and http11
            and length != 0
            and not switching
            and expect.lower() == b"100-continue"
        )
        queue = self._queue
        request = Request(
            method, target, http_version, headers, keep_alive, expect_continue, upgrade_value,
            forwarded,
        )
        queue.append(request)
        self._body_budget = max_body if length == framing.CHUNKED_BODY else None
        if switching:
            self._switching = True
            queue.append(_END)
        return switching

    def on_data(self, data: bytes) -> None:
        budget = self._body_budget
        if budget is not None:
            budget -= len(data)
            if budget < 0:
                raise RemoteProtocolError("request body too large", 413)
            self._body_budget = budget
        self._queue.append(Data(data))
        self._queued_bytes += len(data)
        self._waiting_100 = False

    def on_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self._queue.append(EndOfMessage(trailers) if trailers else _END)

    def on_unparsed(self, rest: bytes) -> None:
        self._blocked = True
        if rest:
            self._chunks.insert(0, rest)
            self._raw_len += len(rest)

    # --- sending ---------------------------------------------------------------------------------

    def send(self, event: Response | InformationalResponse | Data | EndOfMessage) -> bytes:
        """Serialise a response event. Raises LocalProtocolError (500) on misuse."""
        kind = type(event)
        our = self._our
        state = _OUR_TRANSITIONS.get((our, kind))
        if state is None or self._request is None:
            raise LocalProtocolError(f"cannot send {kind.__name__} in state {self.our_state}", 500)
        if kind is Data:
            data = event.data  # type: ignore[union-attr]  # kind is Data
            try:
                out = self._writer.data(data)
            except LocalProtocolError:
                self._fail_local()
                raise
            if out:
                self.body_sent += len(data)
            return out
        if kind is Response:
            return self._send_response(event)  # type: ignore[arg-type]  # kind is Response
        if kind is EndOfMessage:
            try:
                out = self._writer.end(event.trailers)  # type: ignore[union-attr]  # kind is EOM
            except LocalProtocolError:
                self._fail_local()
                raise
            self._our = state
            return out
        return self._send_informational(event)  # type: ignore[arg-type]  # the last kind left

    def send_whole(self, response: Response, body: bytes) -> bytes:
        """Serialise ``response``, ``Data(body)`` and ``EndOfMessage()`` in one call: the common
        one-piece response costs one transition check and one join instead of three ``send``s.

        Errors are those of the three calls: a bad head raises with nothing emitted and our side
        still ``IDLE`` (so :meth:`error_response` can answer 500); a body that breaks the head's
        ``Content-Length`` raises with our side in ``ERROR``.
        """
        if self._our is not IDLE or self._request is None:
            raise LocalProtocolError(f"cannot send Response in state {self.our_state}", 500)
        head = self._send_response(response)
        writer = self._writer
        if writer.mode == CONTENT_LENGTH and writer.remaining == len(body):
            writer.remaining = 0  # exactly the announced length: nothing to frame or check
            self._our = DONE
            self.body_sent = len(body)
            return head + body
        return head + self._whole_body(body)

    def send_apart(self, response: Response, body: bytes) -> tuple[bytes, bytes]:
        """:meth:`send_whole` with the head and the rest as two pieces, to be written one after
        the other: a large body is then never copied into one buffer with its head (see
        ``JOIN_LIMIT``). The errors are send_whole's."""
        if self._our is not IDLE or self._request is None:
            raise LocalProtocolError(f"cannot send Response in state {self.our_state}", 500)
        return self._send_response(response), self._whole_body(body)

    def _whole_body(self, body: bytes) -> bytes:
        """The body and end of the response whose head was just serialised."""
        writer = self._writer
        if writer.mode == CONTENT_LENGTH and writer.remaining == len(body):
            writer.remaining = 0  # exactly the announced length: nothing to frame or check
            self._our = DONE
            self.body_sent = len(body)
            return body
        try:
            data = writer.data(body)
            out = data + writer.end(())
        except LocalProtocolError:
            self._fail_local()
            raise
        self._our = DONE
        if data:
            self.body_sent = len(body)
        return out

    def send_body_elsewhere(self, size: int) -> bool:
        """Account for ``size`` body bytes that the I/O layer writes itself (``sendfile``), held
        to the Content-Length like ``Data``. False when the response carries no body on the
        wire (HEAD, 204, 304): then write nothing."""
        if self._our is not SEND_BODY:
            raise LocalProtocolError(f"cannot send a body in state {self.our_state}", 500)
        try:
            on_wire = self._writer.elsewhere(size)
        except LocalProtocolError:
            self._fail_local()
            raise
        if on_wire:
            self.body_sent += size
        return on_wire

    def frame_body_elsewhere(self, size: int) -> tuple[bytes, bytes] | None:
        """:meth:`send_body_elsewhere` in any framing, chunked included: the bytes to write
        before and after the ``size`` bytes the I/O layer writes itself, or None when the
        response carries no body on the wire (then write nothing)."""
        if self._our is not SEND_BODY:
            raise LocalProtocolError(f"cannot send a body in state {self.our_state}", 500)
        try:
            framing_bytes = self._writer.around(size)
        except LocalProtocolError:
            self._fail_local()
            raise
        if framing_bytes is not None:
            self.body_sent += size
        return framing_bytes

    def _fail_local(self) -> None:
        self._our = ERROR
        self._keep_alive = False

    def _send_response(self, event: Response) -> bytes:
        self.response = event  # for the access log and post_request: what the app answered
        self.body_sent = 0
        status = event.status_code
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(f"bad final status code {status!r}", 500)
        app = app_head(status, event.reason, event.headers)
        http11 = self._http11
        if http11 and not self._head_request:
            mode, length, framing_line = app.framing
        else:
            mode, length, framing_line = framing.response_framing(
                status, self._head_request, http11, app.content_length)
        keep = self._keep_alive and mode != CLOSE_DELIMITED and not app.close
        if self._waiting_100 and self._their is SEND_BODY:
            keep = False  # the client may never send the body it was told to wait with
        parts = [app.lines, framing_line]
        extra = app.extra
        if not keep:
            parts.append(b"connection: close, %s\r\n" % extra if extra else _CLOSE_LINE)
        elif not http11:
            parts.append(_KEEP_ALIVE_LINE)
        elif extra:
            parts.append(b"connection: %s\r\n" % extra)
        date = self._date
        if date is not None and not app.has_date:
            parts.append(date.line())
        if not app.has_server:
            parts.append(self._server_line)
        parts.append(b"\r\n")
        writer = self._writer
        writer.mode = mode
        writer.remaining = length
        self._our = SEND_BODY
        self._waiting_100 = False
        if not keep:
            self._keep_alive = False
        return b"".join(parts)

    def _send_informational(self, event: InformationalResponse) -> bytes:
        status = event.status_code
        if type(status) is not int or not 100 <= status <= 199:
            raise LocalProtocolError(f"bad informational status code {status!r}", 500)
        if not self._http11:
            raise LocalProtocolError("HTTP/1.0 clients cannot receive 1xx responses", 500)
        switching = status == 101
        if switching and (self._request is None or self._request.upgrade is None):
            raise LocalProtocolError("101 Switching Protocols without an upgrade request", 500)
        check_value(event.reason)
        head = status_line(status, event.reason) + encode_fields(event.headers) + b"\r\n"
        if status == 100 or switching:  # another 1xx (103) does not ask for the body
            self._waiting_100 = False
        if switching:
            # HTTP ends here: the protocol named in the request takes over the connection.
            self._our = DONE
            self._keep_alive = False
        return head

    def error_response(self, exc: ProtocolError) -> bytes:
        """A complete response for ``exc`` to write before closing; ``b""`` if a response has
        already started (nothing more can be said). Our side is MUST_CLOSE afterwards."""
        started = self._our is not IDLE
        self._our = DONE
        self._keep_alive = False
        self._waiting_100 = False
        if started:
            return b""
        status = exc.status_hint if 400 <= exc.status_hint <= 599 else 500
        body = b"%d %s\n" % (status, REASONS.get(status, b"Error"))
        parts = [
            status_line(status, b""),
            b"content-type: text/plain; charset=utf-8\r\n",
            framing.content_length_line(len(body)),
            b"connection: close\r\n",
        ]
        if self._date is not None:
            parts.append(self._date.line())
        if self._server_line:
            parts.append(self._server_line)
        parts += (b"\r\n", body)
        return b"".join(parts)

    # --- cycles ----------------------------------------------------------------------------------

    def recycle(self) -> bool:
        """The client is gone: when it left between two messages (no request begun, none
        queued, no protocol switched to, no error), become as this engine was new, for another
        connection, and return True; else False, and nothing changes (then :meth:`release`).
        A new engine costs a connection more than resetting one (its tokenizer and llhttp's
        parser, made and then freed: 7k instructions)."""
        if self._switching or self._dead or self._queue or not self._tokenizer.recycle():
            return False
        self._writer.mode = framing.NO_BODY
        self._writer.remaining = 0
        self.response = None
        self.body_sent = 0
        self._taken = 0
        if self._chunks:
            self._chunks.clear()
        self._raw_len = 0
        self._queued_bytes = 0
        self._their = IDLE
        self._our = IDLE
        self._request = None
        self._keep_alive = True
        self._closing = False
        self._waiting_100 = False
        self._head_request = False
        self._http11 = True
        self._eof = False
        self._blocked = False
        self._error = None
        self._body_budget = None
        return True

    def release(self) -> None:
        """The client is gone: nothing more is received. The tokenizer and this object refer to
        each other (it reports here); dropping it lets a lost connection be freed by reference
        counting instead of waiting for the cycle collector (about 18 objects a connection,
        with a collection every few dozen connections). Responses can still be built."""
        self._tokenizer.release()
        self._tokenizer = _RELEASED

    def reuse(self) -> bool | None:
        """:meth:`start_next_cycle` if both sides are done and the connection is kept (its
        answer), else None and nothing changes: the usual end of a cycle in one call, with no
        exception to raise and catch when the connection cannot be reused."""
        if self._our is not DONE or self._their is not DONE or not self._keep_alive:
            return None
        self._our = IDLE
        self._their = IDLE
        self._request = None
        self._waiting_100 = False
        if self._blocked:
            self._blocked = False
            self._tokenizer.reset()
        return bool(self._queue or self._chunks or self._eof)

    def start_next_cycle(self) -> bool:
        """Reset for the next request after both sides finished and the connection is kept.

        Returns whether :meth:`next_event` may have something other than ``NEED_DATA`` now
        (bytes of the next request are buffered, or the peer closed): when it is False, the
        caller can skip asking until more bytes arrive."""
        ready = self.reuse()
        if ready is None:
            raise LocalProtocolError(
                f"cannot start a new cycle (our {self.our_state}, their {self.their_state})"
            )
        return ready


def _replace_host(headers: list[tuple[bytes, bytes]], authority: bytes) -> None:
    """An absolute-form target's authority takes the place of ``Host`` (RFC 9112 §3.2.2), so
    that what the application reads as the host is what the request named."""
    for index, (name, _) in enumerate(headers):
        if name == b"host":
            headers[index] = (b"host", authority)
            return
    headers.append((b"host", authority))


class _ReleasedTokenizer:
    """What a connection reads with after :meth:`ServerConnection.release`: nothing."""

    __slots__ = ()

    @property
    def in_head(self) -> bool:
        return False

    def feed(self, data: bytes) -> None:
        raise RuntimeError("bytes fed to a released connection")

    def reset(self) -> None:
        return None

    def recycle(self) -> bool:
        return False

    def release(self) -> None:
        return None


_RELEASED: Final = _ReleasedTokenizer()
# What a connection that receives nothing reads with: one released, or a subclass that only
# sends (prefork.http2.responder), which sets every attribute itself without building a
# tokenizer, so that mypyc still knows each one defined and checks none on access.
NO_TOKENIZER: Final = _RELEASED

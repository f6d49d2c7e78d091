"""StreamResponder: the response side of one HTTP/2 stream, in the engine's shape.

The request cycles (ASGI, WSGI, the health answer) turn their response into bytes through
their connection's ``conn`` (``prefork.http.connection.ServerConnection``): ``send`` for each
event, ``send_whole`` and ``send_apart`` for a one-piece response, ``send_body_elsewhere`` for
a file, ``our_state``, ``response`` and ``body_sent`` for the access log and metrics. A stream
gives them this subclass, so they run unchanged over HTTP/2: it checks the same things
(the status, the field names and values, the body against ``Content-Length``) and keeps the
same states, but what it returns is only the body's payload. The head, the informational
heads, the end and the trailers are kept here (:attr:`head`, :attr:`informational`,
:attr:`ended`, :attr:`trailers`) for the stream to turn into frames when the cycle writes
(``prefork.workers.h2_stream``), since only the stream knows the flow-control windows.

It takes over none of ``ServerConnection``'s receiving side and builds none of it (no
tokenizer, no queue): a stream's request arrives as one ``Request``
(``prefork.http2.requests``).
"""

from __future__ import annotations

from typing import Any, Final

from prefork.errors import LocalProtocolError, ProtocolError
from prefork.http.connection import (
    DONE,
    ERROR,
    IDLE,
    NO_TOKENIZER,
    NO_UPGRADE,
    SEND_BODY,
    ServerConnection,
)
from prefork.http.events import Data, EndOfMessage, InformationalResponse, Request, Response
from prefork.http.framing import BodyWriter
from prefork.http.headers import DateCache, check_value
from prefork.http.limits import Limits

# Fields that name or manage the HTTP/1.1 connection: meaningless in HTTP/2, where a message
# carrying one is malformed (RFC 9113 §8.2.2). An app written for HTTP/1.1 may send them, so
# they are dropped rather than refused.
CONNECTION_FIELDS: Final = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                      b"transfer-encoding", b"upgrade"})
_NO_LENGTH: Final = -1
# The receiving side's parts a stream never uses, shared by every stream (never changed).
_NO_WRITER: Final = BodyWriter()
_NO_QUEUE: Final[list[Any]] = []
_STATUS: Final = b":status"


class StreamResponder(ServerConnection):
    """The response side of one stream; see the module docstring."""

    def __init__(self, request: Request, limits: Limits, date: DateCache | None,
                 server_header: bytes | None) -> None:
        # ServerConnection.__init__ is not called: it builds the HTTP/1.1 receiving side. Every
        # attribute it sets is set here all the same, cheaply, so that mypyc knows each one
        # always defined and the HTTP/1.1 engine's accesses stay unchecked.
        self._limits = limits
        self._server_line = b""
        self._date = date
        self._upgrades = NO_UPGRADE
        self._tokenizer = NO_TOKENIZER
        self._writer = _NO_WRITER
        self._queue = _NO_QUEUE
        self._taken = 0
        self._chunks = []
        self._raw_len = 0
        self._queued_bytes = 0
        self._their = IDLE
        self._our = IDLE
        self._request = request
        self._keep_alive = True
        self._closing = False
        self._switching = False
        self._waiting_100 = False
        self._head_request = False
        self._http11 = False
        self._eof = False
        self._blocked = False
        self._dead = False
        self._error = None
        self._body_budget = None
        self.response = None
        self.body_sent = 0
        self.request = request
        self.date = date
        self.server = server_header
        self.head_only = request.method == b"HEAD"
        self.no_body = False  # HEAD, 204 or 304: the body goes nowhere
        self.remaining = _NO_LENGTH  # bytes Content-Length still allows; -1 without one
        # what the stream turns into frames at its next write
        self.informational: list[list[tuple[bytes, bytes]]] = []
        self.head: list[tuple[bytes, bytes]] | None = None
        self.ended = False
        self.trailers: list[tuple[bytes, bytes]] = []

    @property
    def client_is_waiting_for_100_continue(self) -> bool:
        return self.request.expect_continue and self._our is IDLE

    def send(self, event: Response | InformationalResponse | Data | EndOfMessage) -> bytes:
        kind = type(event)
        our = self._our
        if kind is Data:
            if our is not SEND_BODY:
                raise LocalProtocolError(f"cannot send Data in state {our}", 500)
            data = event.data  # type: ignore[union-attr]  # kind is Data
            self._count(len(data))
            return b"" if self.no_body else data
        if kind is EndOfMessage:
            if our is not SEND_BODY:
                raise LocalProtocolError(f"cannot send EndOfMessage in state {our}", 500)
            if self.remaining > 0 and not self.no_body:
                self._our = ERROR
                raise LocalProtocolError("the response body is shorter than its "
                                         "Content-Length", 500)
            trailers = event.trailers  # type: ignore[union-attr]  # kind is EndOfMessage
            if trailers:
                self.trailers = self._fields(list(trailers))
            self.ended = True
            self._our = DONE
            return b""
        if kind is Response:
            if our is not IDLE:
                raise LocalProtocolError(f"cannot send Response in state {our}", 500)
            self._start(event)  # type: ignore[arg-type]  # kind is Response
            return b""
        if our is not IDLE:
            raise LocalProtocolError(f"cannot send InformationalResponse in state {our}", 500)
        status = event.status_code  # type: ignore[union-attr]  # the last kind left
        if type(status) is not int or not 100 <= status <= 199 or status == 101:
            raise LocalProtocolError(f"bad informational status code {status!r}", 500)
        fields = self._fields(list(event.headers))  # type: ignore[union-attr]
        self.informational.append([(_STATUS, b"%d" % status), *fields])
        return b""

    def send_whole(self, response: Response, body: bytes) -> bytes:
        if self._our is not IDLE:
            raise LocalProtocolError(f"cannot send Response in state {self._our}", 500)
        self._start(response)
        self._count(len(body))
        return self._end(body)

    def send_apart(self, response: Response, body: bytes) -> tuple[bytes, bytes]:
        return b"", self.send_whole(response, body)

    def send_body_elsewhere(self, size: int) -> bool:
        if self._our is not SEND_BODY:
            raise LocalProtocolError(f"cannot send a body in state {self._our}", 500)
        self._count(size)
        return not self.no_body

    def error_response(self, exc: ProtocolError) -> bytes:
        """Not for a stream: its errors are answered by the stream itself."""
        raise LocalProtocolError("a stream answers its own errors", 500)

    def _end(self, body: bytes) -> bytes:
        if self.remaining > 0 and not self.no_body:
            self._our = ERROR
            raise LocalProtocolError("the response body is shorter than its Content-Length",
                                     500)
        self.ended = True
        self._our = DONE
        return b"" if self.no_body else body

    def _count(self, size: int) -> None:
        """``size`` more body bytes, held to the Content-Length."""
        remaining = self.remaining
        if remaining != _NO_LENGTH and not self.no_body:
            if size > remaining:
                self._our = ERROR
                raise LocalProtocolError("the response body is longer than its Content-Length",
                                         500)
            self.remaining = remaining - size
        if not self.no_body:
            self.body_sent += size

    def _start(self, event: Response) -> None:
        """Check a final head and keep it as HTTP/2 fields. Raises with nothing kept."""
        status = event.status_code
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(f"bad final status code {status!r}", 500)
        fields = self._fields(list(event.headers))
        length = _NO_LENGTH
        has_date = has_server = False
        for name, value in fields:
            if name == b"content-length":
                if not value.isdigit() or (length != _NO_LENGTH and int(value) != length):
                    raise LocalProtocolError(f"bad Content-Length {value!r}", 500)
                length = int(value)
            elif name == b"date":
                has_date = True
            elif name == b"server":
                has_server = True
        head = [(_STATUS, b"%d" % status), *fields]
        if not has_date and self.date is not None:
            head.append((b"date", self.date.value()))
        if not has_server and self.server is not None:
            head.append((b"server", self.server))
        self.response = event
        self.body_sent = 0
        self.no_body = self.head_only or status == 204 or status == 304
        self.remaining = length
        self.head = head
        self._our = SEND_BODY

    @staticmethod
    def _fields(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """An app's fields as HTTP/2 wants them: names lower-cased, the connection's own
        dropped; a name or value that is not bytes, or one that could break the framing of a
        field (CR, LF, NUL, or a colon or space in a name), is refused."""
        fields = []
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                if isinstance(name, bytearray | memoryview) and \
                        isinstance(value, bytes | bytearray | memoryview):
                    name, value = bytes(name), bytes(value)
                else:
                    raise TypeError(f"header names and values must be bytes, got {name!r}: "
                                    f"{value!r}")
            lowered = name.lower()
            if not lowered or lowered[:1] == b":" or b" " in lowered or b":" in lowered or \
                    b"\r" in lowered or b"\n" in lowered or b"\0" in lowered:
                raise LocalProtocolError(f"bad header name {name!r}", 500)
            check_value(value)
            if lowered in CONNECTION_FIELDS:
                continue
            fields.append((lowered, value))
        return fields

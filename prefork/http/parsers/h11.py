"""The pure-Python backend: h11, used only as a tokeniser, turned into :class:`Sink` calls.

One ``h11.Connection(h11.SERVER)`` reads one request; after its ``EndOfMessage`` (or a head that
switches protocols) the backend stops and gives the bytes h11 has not used back to the sink, and
:meth:`reset` starts a fresh h11 connection for the next request. We never send through h11, so its
own keep-alive rules (it does not keep HTTP/1.0 connections alive) do not apply.

h11 is more lenient than llhttp about the raw head: it accepts bare LF line ends, obs-fold
(which it joins), control characters in values, leading empty lines, and it merges repeated
``Content-Length`` values. The head is therefore located and checked here first (a few C-speed
scans, :func:`_check_head`) so that both backends refuse the same bytes. This module does no I/O.
"""

from __future__ import annotations

import re

import h11

from prefork.errors import RemoteProtocolError
from prefork.http.limits import Limits, check_field_sizes
from prefork.http.parsers import Sink

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def _check_head(head: bytes) -> None:
    """Refuse what llhttp refuses and h11 would accept in a complete request head."""
    lf = head.count(b"\n")
    if head.count(b"\r\n") != lf or head.count(b"\r") != lf:
        raise RemoteProtocolError("line ends in a request head must be CRLF", 400)
    if b"\n " in head or b"\n\t" in head:
        raise RemoteProtocolError("obsolete line folding in request head", 400)
    if _CONTROL.search(head) is not None:
        raise RemoteProtocolError("control character in request head", 400)
    lengths = _CONTENT_LENGTH.findall(head)
    if len(lengths) > 1:
        raise RemoteProtocolError("repeated Content-Length", 400)
    if lengths and not lengths[0].strip(b" \t").isdigit():
        raise RemoteProtocolError(f"bad Content-Length {lengths[0][:32]!r}", 400)


def _remote_error(exc: h11.RemoteProtocolError) -> RemoteProtocolError:
    status = exc.error_status_hint
    if status == 501:
        # h11 answers 501 for transfer codings; the engine refuses every one but a single
        # "chunked" with 400 (see framing.request_body_length), whichever backend runs.
        status = 400
    return RemoteProtocolError(str(exc), status)


class H11Tokenizer:
    __slots__ = (
        "_conn", "_head", "_head_len", "_in_head", "_max_field", "_max_head", "_max_line", "_sink"
    )  # fmt: skip

    def __init__(self, sink: Sink, limits: Limits) -> None:
        self._sink = sink
        self._max_line = limits.max_request_line
        self._max_head = limits.max_head_size
        self._max_field = limits.max_header_size
        self._head_len = 0
        self._head = b""
        self._in_head = True
        self._conn = self._new_connection()

    def _new_connection(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head + 1)

    @property
    def in_head(self) -> bool:
        return self._in_head and bool(self._head)

    def reset(self) -> None:
        self._conn = self._new_connection()
        self._head = b""
        self._in_head = True

    def feed(self, data: bytes) -> None:
        if self._in_head:
            buf = self._head + data if self._head else data
            if buf[:1] in (b"\r", b"\n"):
                buf = buf.lstrip(b"\r\n")  # RFC 9112 §2.2: ignore empty lines before a request
            match = _HEAD_END.search(buf)
            if match is None:
                self._check_partial(buf)
                self._head = buf
                return
            head_end = match.end()
            self._check_partial(buf[:head_end])
            _check_head(buf[:head_end])
            self._head_len = head_end
            self._head = b""
            self._in_head = False
            data = buf
        self._conn.receive_data(data)
        self._pump()

    def _check_partial(self, buf: bytes) -> None:
        # A CR that does not start a CRLF (a final one may still wait for its LF) is refused now:
        # a head whose lines end in bare CR never shows an end, so h11 would wait for it until the
        # headers timeout where llhttp answers 400 at once (RFC 9112 §2.2: bare CR is invalid).
        if buf.count(b"\r") != buf.count(b"\r\n") + buf.endswith(b"\r"):
            raise RemoteProtocolError("bare CR in request head", 400)
        line_end = buf.find(b"\n")
        if line_end == -1:
            if len(buf) > self._max_line + 1:
                raise RemoteProtocolError("request line too long", 414)
        elif line_end > self._max_line + 1:
            raise RemoteProtocolError("request line too long", 414)
        if len(buf) > self._max_head:
            raise RemoteProtocolError("request head too large", 431)

    def _pump(self) -> None:
        conn = self._conn
        sink = self._sink
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _remote_error(exc) from None
            if isinstance(event, h11.Data):
                sink.on_data(bytes(event.data))
            elif isinstance(event, h11.Request):
                headers = list(event.headers)
                if self._head_len > self._max_field:
                    check_field_sizes(headers, self._max_field)
                if sink.on_head(event.method, event.target, event.http_version, headers):
                    self._stop()
                    return
            elif isinstance(event, h11.EndOfMessage):
                sink.on_end(list(event.headers))
                self._stop()
                return
            else:  # NEED_DATA (PAUSED and ConnectionClosed cannot happen before we stop)
                return

    def _stop(self) -> None:
        rest, _closed = self._conn.trailing_data
        self._sink.on_unparsed(bytes(rest))

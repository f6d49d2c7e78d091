"""The pure-Python backend: h11, used only as a tokeniser, turned into :class:`Sink` calls.

One ``h11.Connection(h11.SERVER)`` reads one request; after its ``EndOfMessage`` (or a head that
switches protocols) the backend stops and gives the bytes h11 has not used back to the sink, and
:meth:`reset` starts a fresh h11 connection for the next request. We never send through h11, so its
own keep-alive rules (it does not keep HTTP/1.0 connections alive) do not apply.

h11 is more lenient than llhttp about the raw head: it accepts bare LF line ends, obs-fold
(which it joins), control characters in values, leading empty lines, and it merges repeated
``Content-Length`` values. The head is therefore located and checked here first (a few C-speed
scans, :func:`_check_head`) so that both backends refuse the same bytes.

In a chunked body h11 also accepts chunk sizes of up to 20 hex digits (past 2**64, where 64-bit
parsers read another framing), whitespace after the size, any byte but LF in a chunk extension,
and in trailers obs-fold, control characters and bare LF line ends.
:class:`_ChunkedFraming` follows the chunked framing on the raw bytes alongside h11 (data bytes are
skipped by count, lines are checked with C-speed scans) and refuses those before h11 sees them.
It runs only for chunked bodies. This module does no I/O.
"""

from __future__ import annotations

import re

import h11

from prefork.errors import RemoteProtocolError
from prefork.http.limits import Limits, check_field_sizes
from prefork.http.parsers.contract import Sink

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Group 1 is non-empty for Content-Length and empty for Transfer-Encoding; group 2 is the value.
_FRAMING_FIELD = re.compile(
    rb"^(?:(c)ontent-length|transfer-encoding)[ \t]*:([^\r\n]*)", re.IGNORECASE | re.MULTILINE
)
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]*")
_NOT_EXT = re.compile(rb"[^\t\x20-\x7e]")  # a chunk extension is visible ASCII, SP and HTAB
# RFC 9112 §7.1.1 without the optional whitespace (BWS), as llhttp reads it: after the size
# only ";" or the line end, a name and value are tokens or the value a quoted string; llhttp also
# lets a name be empty (";=v", ";;n") but not the extension end in ";".
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_CHUNK_EXT = re.compile(
    rb"(?:;" + _TCHAR + rb"*(?:=(?:" + _TCHAR + rb'*|"(?:[\t !#-\[\]-~]|\\[\t -~])*"))?)*'
)
_TRAILER_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB; a CR here is bare
_MAX_CHUNK_SIZE_DIGITS = 16  # 16 hex digits hold any 64-bit size; llhttp refuses larger values

_SIZE_LINE, _DATA, _TRAILER, _DONE = range(4)


def _check_head(head: bytes) -> bool:
    """Refuse what llhttp refuses and h11 would accept in a complete request head.

    Returns True when the head has a ``Transfer-Encoding`` field (a chunked body, or a head the
    connection refuses)."""
    lf = head.count(b"\n")
    if head.count(b"\r\n") != lf or head.count(b"\r") != lf:
        raise RemoteProtocolError("line ends in a request head must be CRLF", 400)
    if b"\n " in head or b"\n\t" in head:
        raise RemoteProtocolError("obsolete line folding in request head", 400)
    if _CONTROL.search(head) is not None:
        raise RemoteProtocolError("control character in request head", 400)
    fields = _FRAMING_FIELD.findall(head)
    if not fields:
        return False
    lengths = [value for is_length, value in fields if is_length]
    if len(lengths) > 1:
        raise RemoteProtocolError("repeated Content-Length", 400)
    if lengths and not lengths[0].strip(b" \t").isdigit():
        raise RemoteProtocolError(f"bad Content-Length {lengths[0][:32]!r}", 400)
    return len(lengths) != len(fields)


class _ChunkedFraming:
    """The framing of a chunked request body, followed on the raw bytes alongside h11.

    It finds what h11 accepts and llhttp refuses: a chunk size of more than 16 hex digits, a byte
    other than visible ASCII, SP and HTAB after the size, an extension that is not
    ``;name[=value]`` without whitespace (``5 ``, ``5;``, ``5; a=b``), a trailer line that starts
    with SP or HTAB (obs-fold) or holds a control character, and a size or trailer line that
    ends in a bare LF (the last, empty one too). Anything else that is wrong (no size, a bad
    chunk end) is h11's to refuse. Input may be split anywhere.
    """

    __slots__ = (
        "_cr", "_digits", "_ext", "_extension", "_first", "_line", "_size", "_skip", "_state",
    )  # fmt: skip

    def __init__(self) -> None:
        self._state = _SIZE_LINE
        self._digits = 0  # hex digits of the size line so far
        self._ext = False  # past the hex digits of the size line
        self._extension = b""  # the size line's bytes after its hex digits, so far
        self._size = 0
        self._cr = False  # the last piece ended in a CR inside a size or trailer line
        self._skip = 0  # data bytes and their CRLF still to come
        self._line = 0  # length of the trailer line so far
        self._first = 0  # first byte of the trailer line

    def check(self, data: bytes) -> tuple[int, str] | None:
        """Follow ``data``; return the offset of the first byte to refuse and why, or None."""
        i = 0
        n = len(data)
        while i < n:
            state = self._state
            if state == _DATA:
                left = n - i
                if self._skip >= left:
                    self._skip -= left
                    return None
                i += self._skip
                self._state = _SIZE_LINE
                self._digits = self._size = 0
                self._ext = False
                continue
            if state == _DONE:
                return None
            end = data.find(b"\n", i)
            stop = n if end == -1 else end
            pending_cr = self._cr
            if pending_cr:
                self._cr = False
                if end != i:
                    return i, "bare CR in chunked body"
            tail = stop
            if stop > i and data[stop - 1] == 0x0D:
                tail -= 1  # the CR of the line's CRLF (checked below) or of a bare CR (next piece)
                if end == -1:
                    self._cr = True
            if end != -1 and not (pending_cr if end == i else data[end - 1] == 0x0D):
                return end, "bare LF in chunked body"
            if state == _TRAILER:
                if self._line == 0 and stop > i:
                    self._first = data[i]
                    if self._first in (0x20, 0x09):
                        return i, "obsolete line folding in chunked trailer"
                bad = _TRAILER_CONTROL.search(data, i, tail)
                if bad is not None:
                    return bad.start(), "control character in chunked trailer"
                if end == -1:
                    self._line += n - i
                    return None
                length = self._line + end - i
                if length == 0 or (length == 1 and self._first == 0x0D):
                    self._state = _DONE  # the empty line: the end of the message
                    return None
                self._line = 0
                i = end + 1
                continue
            # _SIZE_LINE
            if not self._ext:
                hex_end = _HEX_RUN.match(data, i, stop).end()  # type: ignore[union-attr]
                digits = self._digits + hex_end - i
                if digits > _MAX_CHUNK_SIZE_DIGITS:
                    return i + _MAX_CHUNK_SIZE_DIGITS - self._digits, "chunk size too large"
                if hex_end > i:
                    self._size = (self._size << 4 * (hex_end - i)) | int(data[i:hex_end], 16)
                    self._digits = digits
                    i = hex_end
                if i < stop:
                    self._ext = True
            if tail > i:
                bad = _NOT_EXT.search(data, i, tail)
                if bad is not None:
                    return bad.start(), "control character in chunk extension"
                self._extension += data[i:tail]
            if end == -1:
                return None
            extension = self._extension
            if extension:
                self._extension = b""
                if _CHUNK_EXT.fullmatch(extension) is None or extension[-1:] == b";":
                    return end, "invalid chunk extension"
            i = end + 1
            if self._digits == 0:
                self._state = _DONE  # no size: h11 refuses the line
            elif self._size == 0:
                self._state = _TRAILER
                self._line = 0
            else:
                self._state = _DATA
                self._skip = self._size + 2
        return None


def _remote_error(exc: h11.RemoteProtocolError) -> RemoteProtocolError:
    status = exc.error_status_hint
    if status == 501:
        # h11 answers 501 for transfer codings; the engine refuses every one but a single
        # "chunked" with 400 (see framing.request_body_length), whichever backend runs.
        status = 400
    return RemoteProtocolError(str(exc), status)


class H11Tokenizer:
    __slots__ = (
        "_chunked", "_conn", "_head", "_head_len", "_in_head", "_max_field", "_max_head",
        "_max_line", "_sink",
    )  # fmt: skip

    def __init__(self, sink: Sink, limits: Limits) -> None:
        self._sink = sink
        self._max_line = limits.max_request_line
        self._max_head = limits.max_head_size
        self._max_field = limits.max_header_size
        self._head_len = 0
        self._head = b""
        self._in_head = True
        self._chunked: _ChunkedFraming | None = None
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
        self._chunked = None

    def recycle(self) -> bool:
        return False  # a new h11 connection costs what a new tokenizer does

    def release(self) -> None:
        return None  # h11's connection holds nothing of ours

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
            head = buf[:head_end]
            self._check_partial(head)
            chunked = _check_head(head)
            self._head_len = head_end
            self._head = b""
            self._in_head = False
            if not chunked:
                self._conn.receive_data(buf)
                self._pump()
                return
            # The head alone first: the body bytes are checked before h11 sees them, and only
            # once the head is known to start a chunked body (not a protocol switch).
            self._conn.receive_data(head)
            data = buf[head_end:]
            if self._pump(data):
                return
            self._chunked = _ChunkedFraming()
        chunked_body = self._chunked
        if chunked_body is not None:
            refused = chunked_body.check(data)
            if refused is not None:
                offset, reason = refused
                if offset:  # what comes before is reported first, as llhttp does
                    self._conn.receive_data(data[:offset])
                    self._pump()
                raise RemoteProtocolError(reason, 400)
        if data:
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

    def _pump(self, tail: bytes = b"") -> bool:
        """Turn h11's events into sink calls; True once stopped (``tail``, bytes not given to h11
        yet, then follows h11's unused bytes to the sink)."""
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
                    self._stop(tail)
                    return True
            elif isinstance(event, h11.EndOfMessage):
                sink.on_end(list(event.headers))
                self._stop(tail)
                return True
            else:  # NEED_DATA (PAUSED and ConnectionClosed cannot happen before we stop)
                return False

    def _stop(self, tail: bytes) -> None:
        rest, _closed = self._conn.trailing_data
        self._sink.on_unparsed(bytes(rest) + tail)

"""The fast backend: llhttp through httptools' callbacks, turned into :class:`Sink` calls.

llhttp in its default (strict) mode already refuses bare LF, obs-fold, control characters in
values, invalid field names and bad chunk sizes; what it lets through (missing Host, HTTP/2.0 in a
request line, trailing spaces in values, ``gzip, chunked``) is caught by the sink, which sees the
same tokens from both backends. httptools keeps parsing a pipelined request after the previous one
inside one ``feed``; its calls simply queue behind the current request in the connection.

Size limits: the target is checked as it arrives; a head that is still incomplete after more than
``Limits.max_head_size`` bytes were fed is refused (431) even before its fields are complete,
because llhttp would otherwise keep buffering one huge field line for us. This module does no I/O.
"""

from __future__ import annotations

from typing import Final

import httptools
from httptools import HttpRequestParser  # looked up on the module: 0.27k instructions a connection

from prefork.errors import RemoteProtocolError
from prefork.http.limits import Limits, check_field_sizes
from prefork.http.parsers.contract import Sink

_VERSIONS: Final = {"1.1": b"1.1", "1.0": b"1.0"}
# Field names as clients usually spell them, each with its lower-case form: one lookup costs
# less than calling bytes.lower, and the name it returns keeps its hash for the engine's own
# lookups of it. A name not here is lowered as before.
_COMMON_NAMES: Final = (
    b"Host", b"Connection", b"User-Agent", b"Accept", b"Accept-Encoding", b"Accept-Language",
    b"Content-Length", b"Content-Type", b"Transfer-Encoding", b"Cookie", b"Authorization",
    b"Cache-Control", b"Pragma", b"Referer", b"Origin", b"Upgrade", b"Expect",
    b"If-None-Match", b"If-Modified-Since", b"Range", b"Forwarded", b"X-Forwarded-For",
    b"X-Forwarded-Proto", b"X-Forwarded-Host", b"X-Real-IP", b"X-Request-ID",
    b"Sec-Fetch-Dest", b"Sec-Fetch-Mode", b"Sec-Fetch-Site", b"Sec-Fetch-User", b"DNT",
    b"Upgrade-Insecure-Requests", b"Priority", b"Keep-Alive", b"TE",
    b"Sec-WebSocket-Key", b"Sec-WebSocket-Version", b"Sec-WebSocket-Extensions",
    b"Sec-WebSocket-Protocol",
)
_LOWER_NAMES: Final[dict[bytes, bytes]] = {
    **{name: name.lower() for name in _COMMON_NAMES},
    **{name.lower(): name.lower() for name in _COMMON_NAMES},
}


class HttptoolsTokenizer:
    __slots__ = (
        "_between",
        "_declined",
        "_declined_left",
        "_feed",
        "_feed_len",
        "_head_bytes",
        "_headers",
        "_in_head",
        "_line",
        "_max_field",
        "_max_head",
        "_max_headers",
        "_max_target",
        "_parser",
        "_sink",
        "_switching",
        "_target",
    )
    __deletable__ = ("_parser",)  # mypyc: release() deletes it

    def __init__(self, sink: Sink, limits: Limits) -> None:
        self._sink = sink
        self._max_target = limits.max_request_line
        self._max_head = limits.max_head_size
        self._max_field = limits.max_header_size
        self._max_headers = limits.max_headers
        self._feed_len = 0
        self._parser = HttpRequestParser(self)
        # After a message that does not keep the connection (Connection: close, HTTP/1.0),
        # llhttp would refuse every later byte for good; the engine decides keep-alive itself
        # and reads nothing after such a message, so llhttp is told to go back to the start:
        # the parser can then serve another connection (see recycle).
        self._parser.set_dangerous_leniencies(lenient_keep_alive=True)
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._head_bytes = 0
        self._switching = False
        # After an Upgrade the engine declined (see on_headers_complete), llhttp reads nothing
        # more: the request's body, _declined_left bytes of it, is counted off here.
        self._declined = False
        self._declined_left = 0
        # Between two messages a feed starts with the next request line, so the message that
        # begins there can read its version from it (see on_headers_complete).
        self._between = True
        self._feed = b""  # the current feed, when it began between two messages
        self._line = b""  # the feed the current message began at the start of

    @property
    def in_head(self) -> bool:
        return self._in_head

    def reset(self) -> None:
        # llhttp reads pipelined requests in one stream: nothing to restart between messages.
        return None

    def recycle(self) -> bool:
        # Between two messages llhttp waits for a request line, as a new parser does (its
        # callbacks are this object's, and stay so).
        if self._in_head or not self._between or self._declined or self._switching:
            return False
        self._feed_len = 0
        self._target = b""
        self._head_bytes = 0
        self._feed = b""
        self._line = b""
        if self._headers:
            self._headers = []
        return True

    def release(self) -> None:
        del self._parser  # the parser holds our bound methods as its callbacks

    def feed(self, data: bytes) -> None:
        # _head_bytes is an upper bound of the current head's size: the whole of the feed it
        # began in, plus every later feed while it is incomplete.
        if self._declined:
            self._declined_body(data)
            return
        self._feed_len = len(data)
        self._feed = data if self._between else b""
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            if self._switching:
                self._sink.on_unparsed(rest)
            else:
                self._declined = True
                self._declined_body(rest)
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, RemoteProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            raise _remote_error(exc) from None
        if self._in_head and self._head_bytes > self._max_head:
            raise RemoteProtocolError("request head too large", 431)

    # --- llhttp callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # self._headers is already a fresh list: on_headers_complete and on_message_complete
        # leave one behind them
        self._in_head = True
        self._head_bytes = self._feed_len
        self._target = b""
        self._between = False
        self._line = self._feed
        self._feed = b""

    def on_url(self, url: bytes) -> None:
        target = self._target + url if self._target else url
        if len(target) > self._max_target:
            raise RemoteProtocolError("request line too long", 414)
        self._target = target

    def on_header(self, name: bytes, value: bytes) -> None:
        # After the head, fields are trailers; on_headers_complete has swapped in a fresh list.
        headers = self._headers
        lowered = _LOWER_NAMES.get(name)
        if lowered is None:
            lowered = name.lower()
        # llhttp leaves out the blanks before a value, not always those after it
        if value and (value[-1] == 0x20 or value[-1] == 0x09 or value[0] == 0x20 or
                      value[0] == 0x09):
            value = value.strip(b" \t")
        headers.append((lowered, value))
        if not self._in_head and (
            len(headers) > self._max_headers or len(name) + len(value) + 2 > self._max_field
        ):
            raise RemoteProtocolError("trailer fields too large", 431)

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        method = parser.get_method()
        target = self._target
        # Read where the line ends when the message began its feed (llhttp read those bytes):
        # get_http_version formats a string each time, 2.3k instructions a request. A line
        # cut short, or led by empty lines, does not match, and llhttp is asked.
        at = len(method) + len(target) + 2
        line_end = self._line[at : at + 10]
        # compared rather than looked up: a fresh slice would be hashed for the lookup
        version = b"1.1" if line_end == b"HTTP/1.1\r\n" else \
            b"1.0" if line_end == b"HTTP/1.0\r\n" else None
        self._line = b""
        if version is None:
            text = parser.get_http_version()
            version = _VERSIONS.get(text) or text.encode()
        headers = self._headers
        self._headers = []
        if self._head_bytes > self._max_field:
            check_field_sizes(headers, self._max_field)
        switching = self._sink.on_head(
            method, target, version, headers
        )
        if not switching and parser.should_upgrade():
            self._declined_left = _declined_body_length(headers)
        if switching and not parser.should_upgrade():
            # The engine's rule and llhttp's disagree on whether the body follows: refuse rather
            # than guess where this message ends. (The other way round, an upgrade the engine
            # declined, llhttp still reads the body and stops after the message, which the
            # engine answers as the connection's last.)
            raise RemoteProtocolError("ambiguous protocol upgrade request", 400)
        self._switching = switching

    def on_body(self, body: bytes) -> None:
        self._sink.on_data(body)

    def on_message_complete(self) -> None:
        self._between = True
        if self._switching or self._declined_left:
            return  # the sink ended the message at its head, or its body is still to come
        trailers = self._headers
        if trailers:
            self._headers = []
        self._sink.on_end(trailers)  # an empty list is kept for the next message's head


    def _declined_body(self, data: bytes) -> None:
        """The body of a request whose Upgrade was declined, which llhttp does not read; what
        follows it is dropped, since the engine closes that connection after its response."""
        left = self._declined_left
        if not left or not data:
            return
        piece = data[:left]
        self._declined_left = left - len(piece)
        self._sink.on_data(piece)
        if not self._declined_left:
            self._sink.on_end([])


def _declined_body_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The Content-Length of a request whose Upgrade the engine declined (it has checked the
    value and refused a chunked body there)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return 0


def _remote_error(exc: Exception) -> RemoteProtocolError:
    reason = str(exc)
    if reason == "Invalid HTTP version":  # a well-formed version that is not 1.x (RFC 9110 §15.6.6)
        return RemoteProtocolError("unsupported HTTP version", 505)
    return RemoteProtocolError(reason or type(exc).__name__, 400)

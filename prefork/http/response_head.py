"""The application's part of a response head: checked and serialised once per distinct head.

An application answers with the same few heads over and over (a status, a content type, a
length), so the checks and the join of its status line and fields are done once per distinct
``(status, reason, fields)`` and remembered; what depends on the connection (framing for HEAD or
HTTP/1.0, persistence, ``Date``, ``Server``) is added per response by the engine
(``prefork.http.connection``). Remembering took an ASGI hello request from 134.1k to 124.9k
instructions under cachegrind, the engine's own cycle from 75.2k to 65.5k
(``bench/http_engine.py``).

The memo is pure (the answer for a key never changes) and bounded: when full it is emptied, so
a stream of distinct heads (a length per response) costs one dict store each, never memory. A
head whose fields cannot be a dict key (lists as pairs) is simply not remembered. This module
does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from prefork.errors import LocalProtocolError
from prefork.http import framing
from prefork.http.headers import (
    NAME_MEMO,
    STATUS_LINES,
    field_tokens,
    find_bad_line,
    lower_name,
    status_line,
)
from prefork.memo import remember

__all__ = ["AppHead", "app_head"]

MEMO_MAX: Final = 512

# Response fields the engine writes itself (framing, persistence) or must not duplicate.
_ENGINE_FIELDS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"server", b"date"}
)
_CONNECTION_TOKENS_KEPT: Final = frozenset({b"close", b"keep-alive"})


class AppHead:
    """What the engine needs of one application head, computed once.

    ``lines`` is the status line and the application's own field lines (checked: no CR, LF or NUL
    smuggled in, names are tokens); ``framing`` is :func:`framing.response_framing` for a
    non-HEAD HTTP/1.1 request, the usual case; ``close`` says the application's ``Connection``
    asked to close and ``extra`` holds its other tokens, to be passed on.
    """

    __slots__ = ("close", "content_length", "extra", "framing", "has_date", "has_server", "lines")

    def __init__(self, lines: bytes, content_length: bytes | None, close: bool, extra: bytes,
                 has_server: bool, has_date: bool, framing: tuple[int, int, bytes]) -> None:
        self.lines = lines
        self.content_length = content_length
        self.close = close
        self.extra = extra
        self.has_server = has_server
        self.has_date = has_date
        self.framing = framing


_MEMO: Final[dict[tuple[object, ...], AppHead]] = {}


def app_head(status: int, reason: bytes, fields: Sequence[tuple[bytes, bytes]]) -> AppHead:
    """The checked application part of a response head; LocalProtocolError (500) for a bad
    field or Content-Length, TypeError or ValueError for fields that are not pairs of bytes.
    ``status`` must already be known to be an int from 200 to 999."""
    try:
        key = (status, reason, *fields)
        head = _MEMO.get(key)
    except TypeError:  # an unhashable field (a list pair): checked every time
        return _build(status, reason, fields)
    if head is None:
        head = remember(_MEMO, key, _build(status, reason, fields), MEMO_MAX)
    return head


def _build(status: int, reason: bytes, fields: Sequence[Any]) -> AppHead:
    # ``fields`` is what the application sent, checked here: typed loosely, so that a compiled
    # build (setup.py) meets a str where bytes belong in these checks, as the interpreter does,
    # and not in its own type check of the loop variables.
    line = None if reason else STATUS_LINES.get(status)
    parts = [line or status_line(status, reason)]
    # The fields the engine reads are rare: one scalar each, a list only for a repeated
    # Connection field.
    length_value: bytes | None = None
    connection: list[bytes] = []
    has_server = has_date = False
    memo = NAME_MEMO
    for name, value in fields:
        lname = memo.get(name) or lower_name(name)
        if lname in _ENGINE_FIELDS:
            if lname == b"content-length":
                if length_value is None:
                    length_value = value
                elif value != length_value:
                    raise LocalProtocolError("conflicting Content-Length values", 500)
                continue
            if lname == b"connection":
                connection.append(value)
                continue
            if lname == b"server":
                has_server = True
            elif lname == b"date":
                has_date = True
            else:  # transfer-encoding, keep-alive: ours to decide
                continue
        parts += (name, b": ", value, b"\r\n")
    try:
        lines = b"".join(parts)
    except TypeError:
        raise find_bad_line(fields, reason) from None
    # One scan of the joined lines instead of a regex per value: every line written here ends
    # in CRLF, so a CR, LF or NUL smuggled into a value or reason is a byte too many (2.9k
    # instructions for a 119-byte head under cachegrind, against 6.7k counting them apart).
    line_count = 1 + (len(parts) - 1) // 4
    if len(lines) - len(lines.translate(None, b"\r\n\x00")) != 2 * line_count:
        raise find_bad_line(fields, reason)
    close = False
    extra = b""
    if connection:
        tokens = field_tokens(connection)
        close = b"close" in tokens
        extra = b", ".join(sorted(tokens - _CONNECTION_TOKENS_KEPT))
    usual = framing.response_framing(status, False, True, length_value)
    return AppHead(lines, length_value, close, extra, has_server, has_date, usual)

"""``start_response`` and the ``write()`` callable of one WSGI request (PEP 3333).

The responder checks what the app gives it and keeps the response head until the cycle sends
it; it does no I/O (``write()`` hands its bytes to the cycle's sink). Rules:

* ``status`` is a native string ``"NNN Reason"``; ``headers`` a list of ``(name, value)``
  native-string pairs, latin-1 encodable, names HTTP tokens, values without CR, LF or NUL.
  Any violation raises at the ``start_response`` call (PEP 3333: "so that an error can be
  raised while the application is still running"), which the cycle answers with a 500.
* Hop-by-hop fields (RFC 9110 §7.6.1) are the server's business and PEP 3333 forbids them to
  the app, but apps (proxies above all) send them anyway and gunicorn drops them silently; so
  are they dropped here, except ``Connection: close``, which the engine honours.
* ``start_response`` may be called again only with ``exc_info``; once the head went out, that
  call re-raises the app's exception (the cycle then aborts the connection).
* The head goes out with the first non-empty body piece, the first ``write()`` or the end of the
  iterable, whichever comes first; ``headers_sent`` says whether it has.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from prefork.http.events import Response
from prefork.http.headers import HOP_BY_HOP as ENGINE_HOP_BY_HOP
from prefork.memo import remember

__all__ = [
    "HOP_BY_HOP",
    "Responder",
    "make_head",
]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# Dropped from an app's headers: the engine's hop-by-hop fields, and the three more that
# gunicorn drops from a WSGI app's (its util.hop_headers), which WSGI apps are written for.
HOP_BY_HOP: Final = frozenset({name.decode("latin-1") for name in ENGINE_HOP_BY_HOP} | {
    "proxy-authenticate", "proxy-authorization", "trailers"})

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# What a header name is to the responder, remembered with it.
_PLAIN: Final = 0
_HOP_BY_HOP: Final = 1
_CONNECTION: Final = 2
_CONTENT_LENGTH: Final = 3
# Header names checked once: name -> (latin-1 bytes, kind). Status lines checked once:
# status -> (code, reason bytes). Apps send the same few of each on every response; both memos
# are pure and bounded, like the engine's NAME_MEMO.
_NAMES: Final[dict[str, tuple[bytes, int]]] = {}
_STATUSES: Final[dict[str, tuple[int, bytes]]] = {}
# Whole heads: (status, *headers) -> make_head's answer.
_HEADS: Final[dict[tuple[Any, ...], tuple[Response, int | None]]] = {}
_MEMO_MAX: Final = 1024


def _has_line_break(text: str) -> bool:
    # three C scans cost a third of one regex search: 0.8k instructions against 2.3k for a
    # 25-character value
    return "\r" in text or "\n" in text or "\x00" in text


def _check_status(status: Any) -> tuple[int, bytes]:
    if type(status) is not str:
        raise TypeError(f"status must be a str, not {type(status).__name__}")
    code = status[:3]
    if len(status) < 4 or not code.isdigit() or status[3] != " " or _has_line_break(status):
        raise ValueError(f"status must look like '200 OK', got {status!r}")
    return int(code), status[4:].encode("latin-1")


def _check_name(name: Any, item: Any) -> tuple[bytes, int]:
    if type(name) is not str:
        raise TypeError(f"response header names and values must be str, got {item!r}")
    if not _TOKEN.match(name):
        raise ValueError(f"invalid response header name {name!r}")
    lower = name.lower()
    kind = (_CONTENT_LENGTH if lower == "content-length" else _CONNECTION
            if lower == "connection" else _HOP_BY_HOP if lower in HOP_BY_HOP else _PLAIN)
    return name.encode("latin-1"), kind


def make_head(status: Any, headers: Any) -> tuple[Response, int | None]:
    """The engine's response head for ``start_response(status, headers)``, and the app's
    ``Content-Length`` if it gave one. Raises TypeError or ValueError for what PEP 3333 (or
    HTTP) forbids.

    A head seen before is not checked again: apps answer with the same few heads, and the
    remembered answer (the head is never mutated) took a WSGI hello request from 141.5k to
    128.8k instructions under cachegrind (``bench/http_engine.py``). The memo is pure and
    bounded: emptied when full; a head with an unhashable item (a list pair) is checked every
    time."""
    if type(headers) is not list:
        raise TypeError(f"response headers must be a list, not {type(headers).__name__}")
    try:
        key = (status, *headers)
        known = _HEADS.get(key)
    except TypeError:
        return _make_head(status, headers)
    if known is None:
        known = remember(_HEADS, key, _make_head(status, headers), _MEMO_MAX)
    return known


def _make_head(status: Any, headers: list[Any]) -> tuple[Response, int | None]:
    known_status = _STATUSES.get(status) if type(status) is str else None
    if known_status is None:
        known_status = _check_status(status)
        if len(_STATUSES) < _MEMO_MAX:
            _STATUSES[status] = known_status
    fields: list[tuple[bytes, bytes]] = []
    length: int | None = None
    names = _NAMES
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError(f"a response header must be a (name, value) tuple, got {item!r}")
        name, value = item
        known = names.get(name) if type(name) is str else None
        if known is None:
            known = _check_name(name, item)
            if len(names) < _MEMO_MAX:
                names[name] = known
        raw_name, kind = known
        if type(value) is not str:
            raise TypeError(f"response header names and values must be str, got {item!r}")
        if _has_line_break(value):
            raise ValueError(f"response header {name!r} has CR, LF or NUL in its value")
        if kind:
            if kind == _HOP_BY_HOP or (kind == _CONNECTION
                                       and value.strip().lower() != "close"):
                continue
            if kind == _CONTENT_LENGTH:
                text = value.strip()
                if not text.isdigit():
                    raise ValueError(f"invalid Content-Length {value!r}")
                length = int(text)
        fields.append((raw_name, value.encode("latin-1")))
    code, reason = known_status
    return Response(code, fields, reason), length


class Responder:
    """``start_response`` for one request; ``head`` is None until it was called."""

    __slots__ = ("content_length", "head", "headers_sent", "sink")

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink  # the cycle's: sends the head if needed, then the bytes
        self.head: Response | None = None
        self.content_length: int | None = None
        self.headers_sent = False

    # The app's arguments are typed loosely (Any) where this module checks them itself, so that
    # a compiled build (setup.py) answers a bad one with the same error as the interpreter.
    def start_response(self, status: Any, headers: Any,
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: break the frame <-> traceback cycle
        elif self.head is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.head, self.content_length = make_head(status, headers)
        return self.write

    def write(self, data: Any) -> None:
        """The legacy ``write()`` callable: sends the head (if not yet) and ``data``."""
        if self.head is None:
            raise AssertionError("write() called before start_response")
        if type(data) is not bytes:
            data = as_bytes(data)
        self.headers_sent = True
        self.sink(data)


def as_bytes(data: Any) -> bytes:
    """A body piece as bytes: bytearray and memoryview are accepted, str is an app bug."""
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"WSGI body pieces must be bytes, not {type(data).__name__}")

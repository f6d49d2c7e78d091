"""Header fields: validation of what the application sends, the hop-by-hop set, ``Date``, reasons.

Response heads are checked once per response with C-speed scans rather than per-byte loops: a
field name is checked against the token grammar once and then remembered (apps send the same few
dozen names over and over), and CR/LF/NUL in values are found by counting line ends in the joined
head (see :func:`find_bad_line`). This module does no I/O; the clock is injected.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, Final

from prefork.errors import LocalProtocolError

# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]")

# RFC 9110 §7.6.1 and RFC 9112 §9.6: meaningful for one connection only. The engine owns framing
# and persistence, so an application's values for these are read for intent, then replaced.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Names validated once are remembered with their lower-cased form. The memo is pure (the answer for
# a name never changes) and bounded, so it needs no reset between connections or tests.
NAME_MEMO: Final[dict[bytes, bytes]] = {}
NAME_MEMO_MAX: Final = 1024


def lower_name(name: Any) -> bytes:
    """Return ``name`` lower-cased after checking it is a token; LocalProtocolError (500) if not
    (a str included: the name is the application's, typed loosely for that check)."""
    lowered = NAME_MEMO.get(name)
    if lowered is not None:
        return lowered
    if not isinstance(name, bytes) or _TOKEN.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid header name {name!r}", 500)
    lowered = name.lower()
    if len(NAME_MEMO) < NAME_MEMO_MAX:
        NAME_MEMO[name] = lowered
    return lowered


def field_tokens(values: Sequence[bytes]) -> set[bytes]:
    """The comma-separated tokens of a list-valued field (all its lines), lower-cased, without
    empty ones (RFC 9110 §5.6.1): ``Connection`` values, whether a request's or an app's."""
    return {token.strip(b" \t") for token in b",".join(values).lower().split(b",")} - {b""}


def check_value(value: Any) -> None:
    """Raise LocalProtocolError (500) if a field value could break the message framing (or is
    not bytes)."""
    if not isinstance(value, bytes) or _BAD_VALUE.search(value) is not None:
        raise LocalProtocolError(f"invalid header value {value!r}", 500)


def find_bad_line(fields: Sequence[Any], reason: bytes) -> LocalProtocolError:
    """The slow path after a joined head failed its line count: name the offending part."""
    try:
        check_value(reason)
        for name, value in fields:
            lower_name(name)
            check_value(value)
    except LocalProtocolError as exc:
        return exc
    return LocalProtocolError("invalid bytes in response head", 500)


def encode_fields(fields: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Serialise validated fields (used for trailers and informational heads, off the hot path)."""
    parts: list[bytes] = []
    for name, value in fields:
        lower_name(name)
        check_value(value)
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts)


# --- status lines ---------------------------------------------------------------------------

REASONS: Final[dict[int, bytes]] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
REASONS.update({418: b"I'm a Teapot", 425: b"Too Early"})

# Precomputed for every known status: the hot path never formats a status line. We answer with
# HTTP/1.1 whatever the request's minor version (RFC 9110 §6.2: send the highest version we conform
# to); persistence and framing for 1.0 clients are decided separately.
STATUS_LINES: Final[dict[int, bytes]] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in REASONS.items()
}


def status_line(status: int, reason: bytes) -> bytes:
    """The status line for ``status``; ``reason`` overrides the standard phrase when not empty."""
    if not reason:
        line = STATUS_LINES.get(status)
        if line is not None:
            return line
    return b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b""))


# --- Date -----------------------------------------------------------------------------------

_DAYS: Final = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS: Final = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
                  b"Nov", b"Dec")  # fmt: skip


def imf_fixdate(seconds: int) -> bytes:
    """RFC 9110 §5.6.7 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.weekday()], t.day, _MONTHS[t.month - 1], t.year, t.hour, t.minute, t.second,
    )  # fmt: skip


class DateCache:
    """The ``Date`` field line, formatted again only when the clock's whole second changes.

    One instance may be shared by every connection of a worker (pass it to ServerConnection), so
    the formatting cost is paid once per second per worker, not per connection.
    """

    __slots__ = ("_clock", "_line", "_second")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        """``date: <IMF-fixdate>\\r\\n`` for the current second."""
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._line = b"date: " + imf_fixdate(second) + b"\r\n"
        return self._line

    def value(self) -> bytes:
        """The IMF-fixdate bytes for the current second."""
        return self.line()[6:-2]

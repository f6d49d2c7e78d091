"""The access log: one line per finished request, in gunicorn's format language or as JSON.

``--access-log-format`` takes gunicorn's strings unchanged (``%(h)s %(l)s %(u)s %(t)s "%(r)s" ...``,
``%({x-request-id}i)s``, ``%({content-type}o)s``, ``%({HOME}e)s``) and renders every atom as
gunicorn does for the same request (its own parser and ``Logger.access`` are the oracle in
tests/unit/test_accesslog.py), so log pipelines built for gunicorn keep parsing. ``json``
instead writes one JSON object per line with fixed field names.

The format is compiled once into a positional ``%`` template and one getter per field, and the
request headers are scanned once per line, for the names the format reads: the default format
renders in about 4 µs, json in 4.5 (shared 2-core VM; ``test_render_cost`` prints it).

Deliberate differences from gunicorn, all on hostile or odd input only:

* Escaping. gunicorn only turns ``"`` into ``\\"``; its ``%(U)s`` is percent-decoded, so a
  request for ``/%0A127.0.0.1 - - [...`` writes a forged second line, and a ``\\`` before a quote
  lets a client close a quoted field. Here every value a client or app can influence (``h u r m U
  q H f a`` and the ``{…}i``/``{…}o``/``{…}e`` atoms) also has ``\\`` doubled and control
  characters (C0, DEL, C1) and non-printable characters above U+00FF written as ``\\xHH`` /
  ``\\uHHHH`` (nginx's and Apache's convention), so one request is always one line and a field
  ends where the format says. Printable Latin-1 (what WSGI's latin-1 paths and headers hold)
  passes through unchanged, as in gunicorn.
* ``%(h)s`` is ``-`` for a unix-socket peer (gunicorn leaves it empty, shifting every field).
* ``%(T)s`` counts whole days too (gunicorn uses ``timedelta.seconds``, which drops them).
* If an environ holds two keys equal but for case, ``{name}e`` prefers the upper-case one.

The line is written through the stdlib logger ``prefork.access`` with a handler that writes only
the message (as gunicorn's ``gunicorn.access``), so a logging config can take the logger over.
Rule: formatting is pure and imports no logging set-up, so the settings table checks a format
with it; the handler that writes lines is :class:`prefork.logs.access_log.AccessLog`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import NamedTuple

from prefork.errors import ConfigError
from prefork.logs.escape import escape

ACCESS_LOGGER = "prefork.access"
DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
JSON_FORMAT = "json"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(slots=True)
class AccessRecord:
    """What one finished request contributes to the access log.

    Strings are as the WSGI environ holds them (bytes decoded as latin-1, ``path``
    percent-decoded), which is what gunicorn logs. ``response_headers`` are the ones the app
    set (gunicorn does not log the ``Date``/``Server``/``Connection`` it adds itself).
    """

    client: tuple[str, int] | None  # after proxy resolution; None for a unix socket
    method: str
    raw_uri: str  # the request target as received: "/a?b=1"
    path: str
    query: str
    http_version: str  # "1.1"
    status: int
    reason: str
    request_headers: Sequence[tuple[bytes, bytes]]  # names lower-case
    response_headers: Sequence[tuple[bytes, bytes]]
    response_body_bytes: int
    request_start: float  # time.time() when the request head arrived
    duration: float  # seconds
    pid: int
    environ: Mapping[str, object] | None = None  # for {name}e: the WSGI environ or os.environ


# --- shared pieces of a record -----------------------------------------------------------------

# The request headers a format reads, by name, every value in arrival order. One pass over the
# headers fills it for all atoms of a line (a scan per atom cost 0.6 µs each with 7 headers).
Found = dict[bytes, list[bytes]]


def _collect(headers: Sequence[tuple[bytes, bytes]], wanted: frozenset[bytes]) -> Found:
    found: Found = {}
    for name, value in headers:
        if name in wanted:
            values = found.get(name)
            if values is None:
                found[name] = [value]
            else:
                values.append(value)
    return found


def _last(found: Found, name: bytes) -> str | None:
    """The last value (gunicorn's ``{name}i``: a dict built from the header list), or None."""
    values = found.get(name)
    return None if values is None else values[-1].decode("latin-1")


def _joined(found: Found, name: bytes) -> str | None:
    """All values joined with ',' (the WSGI environ's ``HTTP_*``, which ``f a u`` read), or None."""
    values = found.get(name)
    if values is None:
        return None
    return (values[0] if len(values) == 1 else b",".join(values)).decode("latin-1")


@functools.lru_cache(maxsize=64)  # clients resend the same credentials; decoding costs ~2 µs
def basic_auth_user(authorization: str | None) -> str | None:
    """The user name of a ``Basic`` Authorization value, decoded as gunicorn decodes it."""
    if not authorization or not authorization.lower().startswith("basic"):
        return None
    parts = authorization.split(" ", 1)
    if len(parts) != 2:
        return None
    try:
        decoded = base64.b64decode(parts[1].strip().encode("utf-8"))
        return decoded.split(b":", 1)[0].decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


def _micros(duration: float) -> int:
    return max(0, round(duration * 1_000_000))


class _Clock:
    """Date strings, cached per second: the time changes once a second, requests far more often."""

    __slots__ = ("_clf", "_iso")

    def __init__(self) -> None:
        self._clf: tuple[int, str] = (-1, "")
        self._iso: tuple[int, str, str] = (-1, "", "")

    def clf(self, when: float) -> str:
        """``[10/Oct/2000:13:55:36 -0700]`` in local time (gunicorn's ``%(t)s``)."""
        second = int(when)
        cached = self._clf
        if cached[0] == second:
            return cached[1]
        tm = time.localtime(second)
        text = (
            f"[{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year:04d}:"
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {_offset(tm.tm_gmtoff, '')}]"
        )
        self._clf = (second, text)
        return text

    def iso(self, when: float) -> str:
        """``2000-10-10T13:55:36.123-07:00`` in local time, to the millisecond."""
        second = int(when)
        cached = self._iso
        if cached[0] != second:
            tm = time.localtime(second)
            head = (
                f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
            )
            cached = self._iso = (second, head, _offset(tm.tm_gmtoff, ":"))
        millis = min(999, int((when - second) * 1000))
        return f"{cached[1]}.{millis:03d}{cached[2]}"


def _offset(gmtoff: int, sep: str) -> str:
    sign = "-" if gmtoff < 0 else "+"
    minutes = abs(gmtoff) // 60
    return f"{sign}{minutes // 60:02d}{sep}{minutes % 60:02d}"


# --- the gunicorn atoms ------------------------------------------------------------------------

Getter = Callable[[AccessRecord, Found], object]


def _remote_addr(r: AccessRecord, found: Found) -> str:
    return "-" if r.client is None else escape(r.client[0])


def _user(r: AccessRecord, found: Found) -> str:
    user = basic_auth_user(_joined(found, b"authorization"))
    return escape(user) if user else "-"


def _request_line(r: AccessRecord, found: Found) -> str:
    return escape(f"{r.method} {r.raw_uri} HTTP/{r.http_version}")


def _referer(r: AccessRecord, found: Found) -> str:
    value = _joined(found, b"referer")
    return "-" if value is None else escape(value)


def _user_agent(r: AccessRecord, found: Found) -> str:
    value = _joined(found, b"user-agent")
    return "-" if value is None else escape(value)


def _duration_l(r: AccessRecord, found: Found) -> str:
    seconds, micros = divmod(_micros(r.duration), 1_000_000)
    return f"{seconds}.{micros:06d}"


# Types match gunicorn's atoms (ints stay ints) so "%(D)d" or "%(s)5s" behave identically.
_FIXED_ATOMS: dict[str, Getter] = {
    "h": _remote_addr,
    "l": lambda r, found: "-",
    "u": _user,
    "r": _request_line,
    "s": lambda r, found: str(r.status),
    "m": lambda r, found: escape(r.method),
    "U": lambda r, found: escape(r.path),
    "q": lambda r, found: escape(r.query),
    "H": lambda r, found: escape(f"HTTP/{r.http_version}"),
    "b": lambda r, found: str(r.response_body_bytes),
    "B": lambda r, found: r.response_body_bytes,
    "f": _referer,
    "a": _user_agent,
    "T": lambda r, found: _micros(r.duration) // 1_000_000,
    "D": lambda r, found: _micros(r.duration),
    "M": lambda r, found: _micros(r.duration) // 1000,
    "L": _duration_l,
    "p": lambda r, found: f"<{r.pid}>",
}
_FIXED_READS: dict[str, bytes] = {"u": b"authorization", "f": b"referer", "a": b"user-agent"}

_VARIABLE_ATOM = re.compile(r"\{(.*)\}([ioe])", re.DOTALL)


def _missing(r: AccessRecord, found: Found) -> str:
    return "-"


def _request_header_atom(name: bytes) -> Getter:
    def get(r: AccessRecord, found: Found) -> str:
        value = _last(found, name)
        return "-" if value is None else escape(value)

    return get


def _response_header_atom(name: bytes) -> Getter:
    def get(r: AccessRecord, found: Found) -> str:
        for header, value in reversed(r.response_headers):
            if header.lower() == name:
                return escape(value.decode("latin-1"))
        return "-"

    return get


def _environ_atom(name: str) -> Getter:
    upper = name.upper()

    def get(r: AccessRecord, found: Found) -> str:
        env = r.environ
        if env is None:
            return "-"
        value = env.get(upper, env.get(name))
        if value is None:  # gunicorn matches keys case-insensitively
            for key, candidate in env.items():
                if key.lower() == name:
                    value = candidate
        return "-" if value is None else escape(str(value))

    return get


def _atom(key: str, clock: _Clock) -> tuple[Getter, bytes | None]:
    """The getter for ``%(key)s`` (gunicorn's lookup rules, '-' for anything unknown) and the
    request header it reads, if any."""
    if key == "t":
        return (lambda r, found: clock.clf(r.request_start + r.duration)), None
    fixed = _FIXED_ATOMS.get(key)
    if fixed is not None:
        return fixed, _FIXED_READS.get(key)
    if key.startswith("{"):  # gunicorn lower-cases these keys, and only these
        match = _VARIABLE_ATOM.fullmatch(key.lower())
        if match is not None:
            name, kind = match.groups()
            if kind == "e":
                return _environ_atom(name), None
            try:
                header = name.encode("latin-1")
            except UnicodeEncodeError:  # no header can have this name
                return _missing, None
            if kind == "i":
                return _request_header_atom(header), header
            return _response_header_atom(header), None
    return _missing, None


# --- compiling a format string -----------------------------------------------------------------

# What may follow "%(key)" in Python's printf-style formatting (no "*": it takes an argument of
# its own, which a mapping cannot supply).
_SPEC = re.compile(r"[#0 +\-]*\d*(?:\.\d*)?[hlL]?[diouxXeEfFgGcrsa]")


class _Compiled(NamedTuple):
    template: str  # positional: '%s "%s"'
    getters: tuple[Getter, ...]  # one per %s of the template
    reads: frozenset[bytes]  # the request headers the getters look at


def _compile(fmt: str, clock: _Clock) -> _Compiled:
    """``'%(h)s "%(r)s"'`` -> ``'%s "%s"'`` and the getters of h and r."""
    template: list[str] = []
    getters: list[Getter] = []
    reads: set[bytes] = set()
    pos = 0
    while True:
        percent = fmt.find("%", pos)
        if percent < 0:
            template.append(fmt[pos:])
            break
        template.append(fmt[pos:percent])
        pos = percent + 1
        if fmt.startswith("%", pos):
            template.append("%%")
            pos += 1
            continue
        if not fmt.startswith("(", pos):
            raise ConfigError(
                f"access_log_format: {fmt[percent:percent + 4]!r} at offset {percent} names no "
                "field; write %(name)s, or %% for a literal %"
            )
        depth, end = 0, pos  # Python's own rule: parentheses nest inside the key
        while end < len(fmt):
            if fmt[end] == "(":
                depth += 1
            elif fmt[end] == ")":
                depth -= 1
                if depth == 0:
                    break
            end += 1
        else:
            raise ConfigError(f"access_log_format: unclosed '%(' at offset {percent}")
        spec = _SPEC.match(fmt, end + 1)
        if spec is None:
            raise ConfigError(
                f"access_log_format: incomplete conversion at offset {percent}: "
                f"{fmt[percent:end + 3]!r}"
            )
        getter, header = _atom(fmt[pos + 1:end], clock)
        getters.append(getter)
        if header is not None:
            reads.add(header)
        template.append("%" + spec.group())
        pos = spec.end()
    return _Compiled("".join(template), tuple(getters), frozenset(reads))


# --- the formatter -----------------------------------------------------------------------------

# A JSON string literal; non-ASCII and control characters escaped (json.dumps's ensure_ascii).
_quote = encode_basestring_ascii
_JSON_READS = frozenset((b"referer", b"user-agent", b"x-request-id"))


class AccessFormatter:
    """A compiled access-log format; :meth:`render` turns a record into one line (no newline)."""

    __slots__ = ("_clock", "_getters", "_json", "_reads", "_template", "fmt")

    def __init__(self, fmt: str = DEFAULT_FORMAT) -> None:
        self.fmt = fmt
        self._clock = _Clock()
        self._json = fmt.strip().lower() == JSON_FORMAT
        compiled = _Compiled("", (), _JSON_READS) if self._json else _compile(fmt, self._clock)
        self._template = compiled.template
        self._getters = compiled.getters
        self._reads = compiled.reads
        try:  # a conversion that cannot take its atom fails now, not on every request
            self.render(_SAMPLE)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(f"access_log_format: {exc}") from None

    @property
    def is_json(self) -> bool:
        return self._json

    def render(self, record: AccessRecord) -> str:
        found = _collect(record.request_headers, self._reads) if self._reads else {}
        if self._json:
            return self._render_json(record, found)
        return self._template % tuple([get(record, found) for get in self._getters])

    def _render_json(self, r: AccessRecord, found: Found) -> str:
        # Built by hand around the C string encoder: json.dumps of the same dict took about 7 µs,
        # this about 2.5. Numbers are ints, or a float repr (valid JSON: it is always finite).
        client = "null" if r.client is None else _quote(r.client[0])
        return (
            f'{{"time":"{self._clock.iso(r.request_start + r.duration)}",'
            f'"remote_addr":{client},"method":{_quote(r.method)},'
            f'"path":{_quote(r.path)},"query":{_quote(r.query)},'
            f'"protocol":{_quote("HTTP/" + r.http_version)},"status":{int(r.status)},'
            f'"bytes":{int(r.response_body_bytes)},"duration_ms":{_micros(r.duration) / 1000!r},'
            f'"referer":{_quote_optional(_joined(found, b"referer"))},'
            f'"user_agent":{_quote_optional(_joined(found, b"user-agent"))},'
            f'"request_id":{_quote_optional(_last(found, b"x-request-id"))},'
            f'"pid":{int(r.pid)}}}'
        )


def _quote_optional(value: str | None) -> str:
    return "null" if value is None else _quote(value)


_SAMPLE = AccessRecord(
    client=("127.0.0.1", 1), method="GET", raw_uri="/", path="/", query="", http_version="1.1",
    status=200, reason="OK", request_headers=(), response_headers=(), response_body_bytes=0,
    request_start=0.0, duration=0.0, pid=1,
)

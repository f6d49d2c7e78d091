"""A stream's request head: HTTP/2 fields in, the engine's ``Request`` out.

``h2`` is told not to check or rewrite the fields it decodes (its checks are a chain of
generators per field, most of an HTTP/2 request's cost): the rules of RFC 9113 §8.2 and §8.3
are checked here, in the one pass that builds the request, and a block that breaks one is
malformed (:class:`MalformedRequest`: the stream is reset with PROTOCOL_ERROR, §8.1.1):

* a name is lower-case visible ASCII without a colon past its first byte, and not empty; a
  value holds no NUL, CR or LF and neither starts nor ends with a space or a tab;
* no connection-specific field (``connection``, ``keep-alive``, ``proxy-connection``,
  ``transfer-encoding``, ``upgrade``), ``TE`` only ``trailers``;
* the pseudo-fields first, each once, only the request's own (``:protocol`` with CONNECT
  alone), ``:method`` always, ``:scheme`` and a non-empty ``:path`` but for CONNECT;
* one ``Host`` at most, the same as ``:authority`` when both are sent.

What is left is what the HTTP/1.1 engine decides for its requests, so that an app sees the
same request either way:

* ``:authority`` becomes the ``Host`` field, first, in place of any ``Host`` sent beside it
  (RFC 9113 §8.3.1); a request with neither is refused as HTTP/1.1 refuses one without Host;
* repeated ``cookie`` fields, split for compression, are joined with ``"; "`` (§8.2.3);
* the size limits: ``--limit-request-line`` for method and path (414),
  ``--limit-request-fields`` and ``--limit-request-field-size`` (431),
  ``--limit-request-body`` for a declared ``Content-Length`` (413);
* ``:path`` is origin-form, or ``*`` for OPTIONS; CONNECT (and extended CONNECT) is not
  served (405).

A refused head raises ``RemoteProtocolError`` with the status to answer on that stream.
:func:`malformed_trailers` checks a trailer block by the same rules (no pseudo-field in it).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Final

from prefork.errors import RemoteProtocolError
from prefork.http.events import Request
from prefork.http.limits import Limits
from prefork.http.targets import CHECKED_HOSTS, check_host

HTTP2_VERSION: Final = b"2"
# RFC 9113 §6.5.2: the settings whose values are bounded (others are taken as sent)
_ENABLE_PUSH: Final = 0x2
_INITIAL_WINDOW_SIZE: Final = 0x4
_MAX_FRAME_SIZE: Final = 0x5
_FORWARDING_FIELDS: Final = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
_CONNECTION_FIELDS: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
# The bytes a field name may hold (RFC 9113 §8.2.1: visible ASCII, no upper case; the colon
# only as a pseudo-field's first byte): deleting them from a name leaves what it must not hold.
_NAME_BYTES: Final = bytes(c for c in range(0x21, 0x7f) if not 0x41 <= c <= 0x5a and c != 0x3a)
_SPACE: Final = 0x20
_TAB: Final = 0x09


class MalformedRequest(RemoteProtocolError):
    """A header block that breaks RFC 9113 §8.2 or §8.3: the stream is reset with
    PROTOCOL_ERROR rather than answered."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


def _check_field(name: bytes, value: bytes) -> None:
    """Raise MalformedRequest unless ``name`` (without a pseudo-field's colon) and ``value``
    may appear in an HTTP/2 field."""
    if not name or name.translate(None, _NAME_BYTES):
        raise MalformedRequest(f"bad field name {name!r}")
    if value:
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise MalformedRequest(f"bad field value {value!r}")
        first = value[0]
        last = value[-1]
        if first in (_SPACE, _TAB) or last in (_SPACE, _TAB):
            raise MalformedRequest(f"field value {value!r} surrounded by whitespace")


def malformed_trailers(fields: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a trailer block breaks RFC 9113 §8.2 (or holds a pseudo-field, §8.1)."""
    try:
        for name, value in fields:
            _check_field(name, value)
            if name in _CONNECTION_FIELDS:
                return True
    except MalformedRequest:
        return True
    return False


def request_head(fields: Iterable[tuple[bytes, bytes]], limits: Limits,
                 end_stream: bool) -> Request:
    """The ``Request`` of a stream's header block; ``end_stream``: the block ended the stream
    (no body follows)."""
    method = path = authority = scheme = protocol = None
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    expect: bytes | None = None
    length: bytes | None = None
    forwarded = False
    regular = False
    max_field = limits.max_header_size
    for name, value in fields:
        if name[:1] == b":":
            _check_field(name[1:], value)
            if regular:
                raise MalformedRequest(f"pseudo-field {name!r} after a regular field")
            if name == b":method":
                if method is not None:
                    raise MalformedRequest("repeated :method")
                method = value
            elif name == b":path":
                if path is not None:
                    raise MalformedRequest("repeated :path")
                path = value
            elif name == b":authority":
                if authority is not None:
                    raise MalformedRequest("repeated :authority")
                authority = value
            elif name == b":scheme":
                # the connection's own scheme is the request's
                if scheme is not None:
                    raise MalformedRequest("repeated :scheme")
                scheme = value
            elif name == b":protocol":
                if protocol is not None:
                    raise MalformedRequest("repeated :protocol")
                protocol = value
            else:
                raise MalformedRequest(f"pseudo-field {name!r} in a request")
            continue
        regular = True
        _check_field(name, value)
        if len(name) + len(value) > max_field:
            raise RemoteProtocolError("header field too large", 431)
        if name in _CONNECTION_FIELDS:
            raise MalformedRequest(f"connection-specific field {name!r}")
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            if host is not None:
                raise MalformedRequest("repeated Host")
            host = value
            continue
        if name == b"content-length":
            length = value
        elif name == b"expect":
            expect = value
        elif name == b"te":
            if value.lower() != b"trailers":
                raise MalformedRequest(f"TE {value!r}")
        elif name in _FORWARDING_FIELDS:
            forwarded = True
        headers.append((name, value))
    if method is None:
        raise MalformedRequest("missing :method")
    if method == b"CONNECT":
        raise RemoteProtocolError("CONNECT is not served", 405)
    if protocol is not None:
        raise MalformedRequest(":protocol without CONNECT")
    if scheme is None:
        raise MalformedRequest("missing :scheme")
    if not path:
        raise MalformedRequest("missing or empty :path")
    if authority is not None and host is not None and host != authority:
        raise MalformedRequest("Host differs from :authority")
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        raise RemoteProtocolError(f"bad :path {path!r}", 400)
    if len(method) + len(path) + 10 > limits.max_request_line:
        raise RemoteProtocolError("request line too long", 414)
    authority = authority if authority is not None else host
    if authority is None:
        raise RemoteProtocolError("missing :authority and Host", 400)
    if authority not in CHECKED_HOSTS:
        check_host(authority)
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    headers.insert(0, (b"host", authority))
    if len(headers) > limits.max_headers:
        raise RemoteProtocolError("too many header fields", 431)
    if length is not None:
        if not length.isdigit():
            raise RemoteProtocolError(f"bad Content-Length {length!r}", 400)
        max_body = limits.max_body_size
        if max_body is not None and int(length) > max_body:
            raise RemoteProtocolError("request body too large", 413)
    expect_continue = (expect is not None and not end_stream
                       and expect.lower() == b"100-continue")
    return Request(method, path, HTTP2_VERSION, headers, True, expect_continue, None, forwarded)


def upgrade_settings(values: list[bytes]) -> bytes | None:
    """The ``HTTP2-Settings`` field of an ``Upgrade: h2c`` request if the upgrade may be taken,
    else None. RFC 7540 §3.2.1 (kept by RFC 9113's §3.1 for the servers that still take the
    upgrade): exactly one such field, whose value is the base64url payload of a SETTINGS frame.
    Checked before the ``101`` goes out, so that a bad one is answered over HTTP/1.1 rather than
    upgraded into a connection that can only be dropped."""
    if len(values) != 1:
        return None
    value = values[0].strip()
    try:
        payload = base64.b64decode(value + b"=" * (-len(value) % 4), altchars=b"-_",
                                   validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(payload) % 6:
        return None
    for at in range(0, len(payload), 6):
        code = int.from_bytes(payload[at:at + 2], "big")
        setting = int.from_bytes(payload[at + 2:at + 6], "big")
        if (code == _ENABLE_PUSH and setting > 1) or \
                (code == _INITIAL_WINDOW_SIZE and setting > 0x7FFFFFFF) or \
                (code == _MAX_FRAME_SIZE and not 0x4000 <= setting <= 0xFFFFFF):
            return None
    return value

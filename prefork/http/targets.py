"""Request targets and the ``Host`` field: which form a target may take, which authority a
request names, and the path and query an application sees.

RFC 9112 §3.2: origin-form (``/path?query``) is the usual target; asterisk-form (``*``) is for
``OPTIONS`` alone and authority-form (``host:port``) for ``CONNECT`` alone; absolute-form
(``http://host/path``) names its own authority, which takes the place of ``Host`` (§3.2.2).
``Host`` itself must be an authority (RFC 9110 §7.2: ``uri-host [":" port]``) or empty: a value
with a path, a query, spaces or userinfo is refused, since applications build URLs from it.

The usual request costs the engine one byte comparison (the target's first byte is ``/``) and one
dict lookup (a ``Host`` value already checked, from a bounded memo). This module does no I/O.
"""

from __future__ import annotations

import re
from typing import Final

from prefork.errors import RemoteProtocolError
from prefork.memo import remember

__all__ = ["CHECKED_HOSTS", "check_host", "check_target", "split_target"]

# RFC 3986 §3.2.2 (reg-name, IPv4 and IP-literal) and §3.2.3 (port), without userinfo (RFC 9110
# §4.2.4: a sender must not send it in an http URI).
_AUTHORITY: Final = re.compile(
    rb"(?:\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]|[0-9A-Za-z\-._~%!$&'()*+,;=]*)(?::[0-9]*)?"
)
# An authority-form target for CONNECT names a host and its port (RFC 9110 §9.3.6).
_CONNECT_AUTHORITY: Final = re.compile(
    rb"(?:\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]|[0-9A-Za-z\-._~%!$&'()*+,;=]+):[0-9]+"
)
# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); then "//" authority.
_ABSOLUTE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*://([^/?#]*)")

# Host values found valid (a server sees a few); bounded like every memo (see prefork.memo).
CHECKED_HOSTS: Final[dict[bytes, bool]] = {}
_CHECKED_HOSTS_MAX: Final = 256


def check_host(value: bytes) -> None:
    """Refuse (400) a ``Host`` value that is not ``uri-host [":" port]`` or empty; a valid one
    is remembered, so the caller may skip the call for a value in :data:`CHECKED_HOSTS`."""
    if _AUTHORITY.fullmatch(value) is None:
        raise RemoteProtocolError(f"invalid Host {value[:64]!r}", 400)
    remember(CHECKED_HOSTS, value, True, _CHECKED_HOSTS_MAX)


def check_target(method: bytes, target: bytes) -> bytes | None:
    """Check a target that is not origin-form (the caller saw a first byte other than ``/``), or
    any ``CONNECT`` target. Returns the authority of an absolute-form target, which replaces
    ``Host``; None for the other forms. Raises RemoteProtocolError (400) for a form the method
    may not use."""
    if method == b"CONNECT":
        if _CONNECT_AUTHORITY.fullmatch(target) is None:
            raise RemoteProtocolError("CONNECT needs an authority-form target (host:port)", 400)
        return None
    if target == b"*":
        if method != b"OPTIONS":
            raise RemoteProtocolError("asterisk-form target is only for OPTIONS", 400)
        return None
    absolute = _ABSOLUTE.match(target)
    if absolute is None:
        raise RemoteProtocolError("request target must start with / (origin-form)", 400)
    authority = absolute.group(1)
    if not authority or _AUTHORITY.fullmatch(authority) is None:
        raise RemoteProtocolError(f"invalid authority in target {authority[:64]!r}", 400)
    return authority


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Raw path and query of a request target: origin-form, absolute-form (scheme and authority
    dropped, RFC 9112 §3.2.2; an empty path is ``/``) or asterisk-form (kept as is)."""
    if not target.startswith(b"/"):
        _, sep, rest = target.partition(b"://")
        if sep:
            slash = rest.find(b"/")
            mark = rest.find(b"?")
            if slash < 0 or 0 <= mark < slash:
                rest = b"/" + rest[mark:] if mark >= 0 else b"/"
                slash = 0
            target = rest[slash:]
    path, _, query = target.partition(b"?")
    return path, query

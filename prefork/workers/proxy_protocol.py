"""The PROXY protocol (HAProxy's, versions 1 and 2): who the client of a load balancer is.

A load balancer that speaks it (HAProxy, nginx ``proxy_protocol on;``, AWS NLB, …) sends one
header before the first byte of HTTP, saying which address the client connected from and which
it connected to. Version 1 is one text line, at most 107 bytes with its CRLF::

    PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\\r\\n
    PROXY UNKNOWN\\r\\n

Version 2 is binary: a 12-byte signature, one byte of version and command, one of address
family and transport, a big-endian length, then that many bytes of addresses and TLVs::

    \\r\\n\\r\\n\\0\\r\\nQUIT\\n | 0x2C | 0xFT | len(2) | addresses | TLVs
    addresses: src dst sport dport (4+4+2+2, 16+16+2+2) or src dst paths (108+108)

``parse`` is called with what a connection has received so far and answers ``NEED_MORE``
until a whole header is there, then the header and how many bytes it took; the rest of the
buffer is the HTTP stream. A header that says nothing about the client (v1 ``UNKNOWN``, v2
``LOCAL`` — a health check by the balancer itself — or an unspecified family) parses to None:
the real peer stays the client. TLVs (ALPN, authority, TLS details) are skipped.

Rule: pure functions over bytes; no I/O. Malformed input raises ``RemoteProtocolError`` (400).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass
from typing import Literal

from prefork.errors import RemoteProtocolError

V1_PREFIX = b"PROXY "
# The longest v1 line: "PROXY UNKNOWN" with two full IPv6 addresses and two 5-digit ports.
V1_MAX_LENGTH = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = struct.Struct("!12sBBH")  # signature, version/command, family/transport, length
_INET = struct.Struct("!4s4sHH")
_INET6 = struct.Struct("!16s16sHH")
_UNIX = struct.Struct("!108s108s")
_TLV = struct.Struct("!BH")

_LOCAL, _PROXY = 0x0, 0x1
_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = range(4)
_V1_FAMILIES = {b"TCP4": 4, b"TCP6": 6}


class Sentinel(enum.Enum):
    NEED_MORE = "NEED_MORE"  # no whole header yet: call again with more bytes

    def __repr__(self) -> str:
        return self.value


NEED_MORE = Sentinel.NEED_MORE


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What the balancer said: ``family`` is ``"inet"``, ``"inet6"`` or ``"unix"``; for a unix
    socket the addresses are paths with port 0."""

    version: int
    family: str
    source: tuple[str, int]
    destination: tuple[str, int]


Parsed = tuple[ProxyHeader | None, int] | Literal[Sentinel.NEED_MORE]


def parse(buffer: bytes) -> Parsed:
    """The header at the start of ``buffer`` and its length, or ``NEED_MORE``."""
    if not buffer:
        return NEED_MORE
    if buffer[0] == V2_SIGNATURE[0]:
        return _parse_v2(buffer)
    if buffer[0] == V1_PREFIX[0]:
        return _parse_v1(buffer)
    raise RemoteProtocolError("expected a PROXY protocol header")


def starts_like_header(buffer: bytes) -> bool | None:
    """Whether ``buffer`` begins with either version's signature; None while too short to say
    (a strict prefix of one of them)."""
    for signature in (V1_PREFIX, V2_SIGNATURE):
        if buffer.startswith(signature):
            return True
        if signature.startswith(buffer[:len(signature)]):
            return None
    return False


def _parse_v1(buffer: bytes) -> Parsed:
    end = buffer.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if not V1_PREFIX.startswith(buffer[:len(V1_PREFIX)]):
            raise RemoteProtocolError("expected a PROXY protocol header")
        if len(buffer) >= V1_MAX_LENGTH:
            raise RemoteProtocolError("PROXY protocol v1 header longer than 107 bytes")
        if b"\n" in buffer or b"\r" in buffer[:-1]:
            raise RemoteProtocolError("PROXY protocol v1 header has a bare CR or LF")
        return NEED_MORE
    line = buffer[:end]
    consumed = end + 2
    if not line.startswith(V1_PREFIX):
        raise RemoteProtocolError("expected a PROXY protocol header")
    fields = line.split(b" ")
    if fields[1] == b"UNKNOWN":
        return None, consumed  # the rest of the line is ignored, as the spec asks
    version = _V1_FAMILIES.get(fields[1])
    if version is None:
        raise RemoteProtocolError(f"PROXY protocol v1: unknown protocol {fields[1]!r}")
    if len(fields) != 6:
        raise RemoteProtocolError("PROXY protocol v1: expected 4 address fields")
    source = _v1_address(fields[2], version)
    destination = _v1_address(fields[3], version)
    header = ProxyHeader(1, "inet" if version == 4 else "inet6",
                         (source, _v1_port(fields[4])), (destination, _v1_port(fields[5])))
    return header, consumed


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise RemoteProtocolError(f"PROXY protocol v1: bad address {text!r}") from None
    if address.version != version:
        raise RemoteProtocolError(f"PROXY protocol v1: {text!r} is not an IPv{version} address")
    return str(address)


def _v1_port(text: bytes) -> int:
    if not (text.isdigit() and len(text) <= 5) or int(text) > 65535:
        raise RemoteProtocolError(f"PROXY protocol v1: bad port {text!r}")
    return int(text)


def _parse_v2(buffer: bytes) -> Parsed:
    if len(buffer) < V2_HEADER.size:
        if not V2_SIGNATURE.startswith(buffer[:len(V2_SIGNATURE)]):
            raise RemoteProtocolError("expected a PROXY protocol header")
        return NEED_MORE
    signature, version_command, family_transport, length = V2_HEADER.unpack_from(buffer)
    if signature != V2_SIGNATURE:
        raise RemoteProtocolError("expected a PROXY protocol header")
    if version_command >> 4 != 2:
        raise RemoteProtocolError(f"PROXY protocol: unknown version {version_command >> 4}")
    command = version_command & 0xF
    if command not in (_LOCAL, _PROXY):
        raise RemoteProtocolError(f"PROXY protocol v2: unknown command {command}")
    family, transport = family_transport >> 4, family_transport & 0xF
    if family > _AF_UNIX or transport > 2:
        raise RemoteProtocolError(f"PROXY protocol v2: unknown family {family_transport:#x}")
    consumed = V2_HEADER.size + length
    if len(buffer) < consumed:
        return NEED_MORE
    if command == _LOCAL or family == _UNSPEC:
        return None, consumed  # the balancer's own connection: the real peer is the client
    body = buffer[V2_HEADER.size:consumed]
    header, used = _v2_addresses(family, body)
    _check_tlvs(body[used:])
    return header, consumed


def _v2_addresses(family: int, body: bytes) -> tuple[ProxyHeader, int]:
    layout = {_AF_INET: _INET, _AF_INET6: _INET6, _AF_UNIX: _UNIX}[family]
    if len(body) < layout.size:
        raise RemoteProtocolError("PROXY protocol v2: address block too short for its family")
    if family == _AF_UNIX:
        source, destination = (_unix_path(raw) for raw in _UNIX.unpack_from(body))
        return ProxyHeader(2, "unix", (source, 0), (destination, 0)), layout.size
    src, dst, sport, dport = layout.unpack_from(body)
    name = "inet" if family == _AF_INET else "inet6"
    header = ProxyHeader(2, name, (str(ipaddress.ip_address(src)), sport),
                         (str(ipaddress.ip_address(dst)), dport))
    return header, layout.size


def _unix_path(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _check_tlvs(tlvs: bytes) -> None:
    """Walk the TLVs without reading them: each must fit in the header's length."""
    offset = 0
    while offset < len(tlvs):
        if len(tlvs) - offset < _TLV.size:
            raise RemoteProtocolError("PROXY protocol v2: truncated TLV")
        _kind, length = _TLV.unpack_from(tlvs, offset)
        offset += _TLV.size + length
        if offset > len(tlvs):
            raise RemoteProtocolError("PROXY protocol v2: TLV longer than the header")

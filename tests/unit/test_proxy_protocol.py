"""The PROXY protocol parser: both versions, every split point, malformed and oversize input."""

from __future__ import annotations

import socket
import struct

import pytest

from prefork.errors import RemoteProtocolError
from prefork.workers.proxy_protocol import (
    NEED_MORE,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    parse,
    starts_like_header,
)

HTTP = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def v2(command: int, family_transport: int, body: bytes) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family_transport, len(body)) + body


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
            + struct.pack("!HH", sport, dport))


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!HH", sport, dport))


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


V1_TCP4 = b"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::9 2001:db8::1 4711 8080\r\n"
V2_INET = v2(1, 0x11, inet("203.0.113.9", "192.0.2.1", 56324, 443))
V2_INET6 = v2(1, 0x21, inet6("2001:db8::9", "2001:db8::1", 4711, 8080))
V2_TLVS = v2(1, 0x11, inet("203.0.113.9", "192.0.2.1", 56324, 443)
             + tlv(0x01, b"h2") + tlv(0x02, b"shop.example") + tlv(0x04, b"\0" * 5))

VALID = [
    (V1_TCP4, ProxyHeader(1, "inet", ("203.0.113.9", 56324), ("192.0.2.1", 443))),
    (V1_TCP6, ProxyHeader(1, "inet6", ("2001:db8::9", 4711), ("2001:db8::1", 8080))),
    (b"PROXY UNKNOWN\r\n", None),
    (b"PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n", None),
    (V2_INET, ProxyHeader(2, "inet", ("203.0.113.9", 56324), ("192.0.2.1", 443))),
    (V2_INET6, ProxyHeader(2, "inet6", ("2001:db8::9", 4711), ("2001:db8::1", 8080))),
    (V2_TLVS, ProxyHeader(2, "inet", ("203.0.113.9", 56324), ("192.0.2.1", 443))),
    (v2(0, 0x00, b""), None),  # LOCAL: a health check from the balancer itself
    (v2(0, 0x11, inet("10.0.0.1", "10.0.0.2", 1, 2)), None),  # LOCAL ignores the addresses
    (v2(1, 0x00, b"\0" * 7), None),  # UNSPEC family: keep the real peer
    (v2(1, 0x31, b"/run/client.sock".ljust(108, b"\0") + b"/run/lb.sock".ljust(108, b"\0")),
     ProxyHeader(2, "unix", ("/run/client.sock", 0), ("/run/lb.sock", 0))),
    (v2(1, 0x12, inet("203.0.113.9", "192.0.2.1", 1, 2)),
     ProxyHeader(2, "inet", ("203.0.113.9", 1), ("192.0.2.1", 2))),  # DGRAM: still an address
]
IDS = ["v1-tcp4", "v1-tcp6", "v1-unknown", "v1-unknown-addresses", "v2-inet", "v2-inet6",
       "v2-tlvs", "v2-local", "v2-local-addresses", "v2-unspec", "v2-unix", "v2-dgram"]


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=IDS)
def test_valid_headers_and_what_follows(raw: bytes, expected: ProxyHeader | None) -> None:
    assert parse(raw) == (expected, len(raw))
    assert parse(raw + HTTP) == (expected, len(raw))  # the rest is the HTTP stream's
    assert starts_like_header(raw) is True


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=IDS)
def test_every_split_point_needs_more_then_parses(raw: bytes,
                                                  expected: ProxyHeader | None) -> None:
    for cut in range(len(raw)):
        assert parse(raw[:cut]) is NEED_MORE, cut
    assert parse(raw) == (expected, len(raw))


def whole(raw: bytes) -> tuple[ProxyHeader | None, int]:
    parsed = parse(raw)
    assert parsed is not NEED_MORE
    return parsed


def test_ipv6_address_is_normalised() -> None:
    header, _ = whole(b"PROXY TCP6 2001:DB8:0:0::9 ::1 1 2\r\n")
    assert header is not None and header.source == ("2001:db8::9", 1)


MALFORMED_V1 = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"PROXY\r\n",
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
    b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.\xff 5.6.7.8 1 2\r\n",
    b"PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED_V1)
def test_malformed_v1_is_a_400(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse(raw)
    assert caught.value.status_hint == 400


MALFORMED_V2 = [
    V2_SIGNATURE[:11] + b"X" + bytes(4),  # signature
    V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12),  # version 1 in a v2 header
    V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12),  # command 2
    V2_SIGNATURE + bytes([0x21, 0x41, 0, 12]) + bytes(12),  # family 4
    V2_SIGNATURE + bytes([0x21, 0x13, 0, 12]) + bytes(12),  # transport 3
    v2(1, 0x11, bytes(11)),  # an IPv4 block is 12 bytes
    v2(1, 0x21, bytes(35)),  # an IPv6 block is 36 bytes
    v2(1, 0x31, bytes(215)),  # a unix block is 216 bytes
    v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01\x00"),  # truncated TLV
    v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01\x00\x05ab"),  # TLV overruns
]


@pytest.mark.parametrize("raw", MALFORMED_V2)
def test_malformed_v2_is_a_400(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse(raw)
    assert caught.value.status_hint == 400


@pytest.mark.parametrize("raw", [b"G", b"\r\n\r\n\x00X", b"PX", b"\x00"])
def test_a_wrong_first_byte_fails_without_waiting(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse(raw)


def test_v1_longer_than_107_bytes_is_refused_even_without_its_end() -> None:
    longest = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - len(b"PROXY UNKNOWN ") - 2) + b"\r\n"
    assert len(longest) == V1_MAX_LENGTH and parse(longest) == (None, V1_MAX_LENGTH)
    unterminated = b"PROXY TCP4 " + b"1" * (V1_MAX_LENGTH - 11)
    with pytest.raises(RemoteProtocolError, match="107"):
        parse(unterminated)
    with pytest.raises(RemoteProtocolError):
        parse(longest[:-2] + b"x\r\n")  # 108 bytes


def test_v1_crlf_past_the_limit_is_not_found() -> None:
    raw = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 80 + b"\r\n"
    with pytest.raises(RemoteProtocolError):
        parse(raw)


def test_v2_with_the_largest_length_waits_for_all_of_it() -> None:
    raw = v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0xEE, bytes(65535 - 12 - 3)))
    assert parse(raw[:-1]) is NEED_MORE
    header, used = whole(raw)
    assert used == 16 + 65535 and header is not None and header.source == ("1.2.3.4", 1)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"", None), (b"P", None), (b"PROXY", None), (b"PROXY ", True), (b"\r\n\r\n\x00", None),
    (V2_SIGNATURE, True), (b"GET / HTTP/1.1", False), (b"POST /", False), (b"PUT", False),
    (b"\r\n\r\n\x00X", False),
])
def test_starts_like_header(raw: bytes, expected: bool | None) -> None:
    assert starts_like_header(raw) is expected

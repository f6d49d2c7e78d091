"""PROXY protocol on a real server: the balancer's header names the client, from trusted peers
only, with both parsers."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from prefork.testing import parse_response, running_server
from prefork.workers.proxy_protocol import V2_SIGNATURE

from .test_proxy_headers import origin_app

V1 = b"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\n"
V2 = (V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x21, 36 + 7)
      + socket.inet_pton(socket.AF_INET6, "2001:db8::9")
      + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 4711, 443)
      + struct.pack("!BH", 0x02, 4) + b"shop")  # an authority TLV, skipped
V2_LOCAL = V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x00, 0)


def request(path: str = "/", *, close: bool = True, extra: str = "") -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: shop\r\n{connection}{extra}\r\n".encode()


def exchange(port: int, *parts: bytes, nodelay: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Send ``parts`` (one segment each where ``nodelay``) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in parts:
            sock.sendall(part)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return parse_response(b"".join(chunks))


def client_of(response: tuple[int, dict[str, str], bytes]) -> object:
    status, _, body = response
    assert status == 200, body
    return json.loads(body)["client"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_v1_and_v2_headers_name_the_client(parser: str) -> None:
    with running_server(origin_app, workers=1, http=parser, proxy_protocol=True) as server:
        assert client_of(exchange(server.port, V1 + request())) == ["203.0.113.9", 56324]
        assert client_of(exchange(server.port, V2 + request())) == ["2001:db8::9", 4711]
        # LOCAL (the balancer's own health check): the real peer is the client
        assert client_of(exchange(server.port, V2_LOCAL + request()))[0] == "127.0.0.1"
        assert client_of(exchange(server.port, b"PROXY UNKNOWN\r\n" + request()))[0] \
            == "127.0.0.1"
        # the header alone first, then the request; and the header one byte at a time
        assert client_of(exchange(server.port, V1, request(), nodelay=True))[0] == "203.0.113.9"
        pieces = [V2[i:i + 1] for i in range(len(V2))] + [request()]
        assert client_of(exchange(server.port, *pieces, nodelay=True))[0] == "2001:db8::9"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_keep_alive_requests_keep_the_proxied_client(parser: str) -> None:
    """The header comes once per connection; forwarding headers are then judged by the proxied
    address (203.0.113.9 is not a trusted proxy, so its X-Forwarded-For is ignored)."""
    with running_server(origin_app, workers=1, http=parser, proxy_protocol=True) as server:
        spoof = "X-Forwarded-For: 198.51.100.7\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(V1 + request(close=False))  # then a pipelined one, then a later one
            sock.sendall(request(close=False, extra=spoof))
            first = sock.recv(65536)
            sock.sendall(request(extra=spoof))
            chunks = [first]
            while data := sock.recv(65536):
                chunks.append(data)
        raw = b"".join(chunks)
        assert raw.count(b"HTTP/1.1 200 ") == 3
        assert raw.count(b'["203.0.113.9", 56324]') == 3 and b"198.51.100.7" not in raw


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_a_trusted_peer_must_send_the_header(parser: str) -> None:
    with running_server(origin_app, workers=1, http=parser, proxy_protocol=True) as server:
        status, headers, _ = exchange(server.port, request())
        assert status == 400 and headers["connection"] == "close"
        assert exchange(server.port, b"PROXY TCP4 1.2.3.4 nope 1 2\r\n" + request())[0] == 400
        assert exchange(server.port, b"PROXY TCP4 " + b"1" * 200)[0] == 400  # oversize
        # the server still serves
        assert client_of(exchange(server.port, V1 + request()))[0] == "203.0.113.9"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_an_untrusted_peer_may_not_send_one(parser: str) -> None:
    with running_server(origin_app, workers=1, http=parser, proxy_protocol=True,
                        proxy_allow_ips="10.9.9.9") as server:
        assert exchange(server.port, V1 + request())[0] == 400
        assert exchange(server.port, V2 + request())[0] == 400
        assert client_of(exchange(server.port, request()))[0] == "127.0.0.1"
        # a request that starts like a header but is not one is plain HTTP
        status, _, _ = exchange(server.port, b"P", b"OST / HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n", nodelay=True)
        assert status == 200


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_off_by_default(parser: str) -> None:
    with running_server(origin_app, workers=1, http=parser) as server:
        assert client_of(exchange(server.port, request()))[0] == "127.0.0.1"
        assert exchange(server.port, V1 + request())[0] == 400  # not HTTP

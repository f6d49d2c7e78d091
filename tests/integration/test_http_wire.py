"""What goes over the wire: keep-alive, pipelining, split writes, framing, HEAD/204/304,
``Date``/``Server``, and interop with ``http.client``. Every test runs on both parsers and on
uvloop and plain asyncio."""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from tests.integration import apps

pytestmark = pytest.mark.timeout(20)


def test_hello_keep_alive(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello)
    client = client_factory(server.port)
    for _ in range(3):
        reply = client.request()
        assert (reply.status, reply.body) == (200, apps.HELLO)
        assert b"connection" not in reply.headers
    assert server.call(_requests(server)) == 3


async def _requests(server: Any) -> int:
    return int(server.state.counters.requests)


def test_http_client_interop(serve: Any) -> None:
    server = serve(apps.echo)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for size in (0, 1, 70_000):
            body = b"z" * size
            conn.request("POST", "/echo", body=body)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == body
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.getheader("x-method") == "GET"
        assert response.read() == b""
    finally:
        conn.close()


def test_pipelined_requests_answered_in_order(serve: Any, client_factory: Any) -> None:
    server = serve(apps.echo)
    client = client_factory(server.port)
    requests = b"".join(
        b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, len(body), body)
        for i, body in enumerate([b"first", b"", b"third" * 1000, b"fourth"])
    )
    client.send(requests)
    bodies = [client.response("POST").body for _ in range(4)]
    assert bodies == [b"first", b"", b"third" * 1000, b"fourth"]


def test_request_split_at_every_offset(serve: Any, client_factory: Any) -> None:
    server = serve(apps.echo)
    raw = (b"POST /split HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    client = client_factory(server.port)
    for offset in range(1, len(raw)):
        client.send(raw[:offset])
        client.send(raw[offset:])
        assert client.response("POST").body == b"hello world"


def test_request_one_byte_at_a_time(serve: Any, client_factory: Any) -> None:
    server = serve(apps.echo)
    client = client_factory(server.port)
    for byte in b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc":
        client.send(bytes([byte]))
    assert client.response("POST").body == b"abc"


def test_streamed_response_is_chunked(serve: Any, client_factory: Any) -> None:
    server = serve(apps.stream)
    client = client_factory(server.port)
    reply = client.request()
    assert reply.headers[b"transfer-encoding"] == b"chunked"
    assert reply.body == b"one,two,three"
    assert client.request().body == b"one,two,three"  # still alive


def test_http10_streamed_response_is_close_delimited(serve: Any, client_factory: Any) -> None:
    server = serve(apps.stream)
    client = client_factory(server.port)
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    data = client.recv_all()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"one,two,three"


def test_http10_keep_alive(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello)
    client = client_factory(server.port)
    for _ in range(2):
        client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.sock.recv(4096)
        assert b"connection: keep-alive" in head.lower()
        rest = head.partition(b"\r\n\r\n")[2]
        while len(rest) < len(apps.HELLO):
            rest += client.sock.recv(4096)
        assert rest == apps.HELLO


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304),
                                                ("HEAD", 404)])
def test_no_body_responses(serve: Any, client_factory: Any, method: str, status: int) -> None:
    server = serve(apps.status_with_body)
    client = client_factory(server.port)
    reply = client.request(method, f"/?{status}")
    assert reply.status == status
    assert reply.body == b""
    # the connection is still in sync: the next response parses cleanly
    assert client.request("GET", "/?200").body == b"a body that must not be seen"


def test_server_and_date_headers(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello)
    reply = client_factory(server.port).request()
    assert reply.headers[b"server"] == b"prefork"
    assert reply.headers[b"date"].endswith(b" GMT")


def test_no_server_no_date_header(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello, server_header=False, date_header=False)
    reply = client_factory(server.port).request()
    assert b"server" not in reply.headers
    assert b"date" not in reply.headers


def test_bad_request_gets_400_and_close(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello)
    client = client_factory(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    data = client.recv_all()
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in data.lower()


def test_connection_close_request(serve: Any, client_factory: Any) -> None:
    server = serve(apps.hello)
    client = client_factory(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = client.recv_all()
    assert data.endswith(apps.HELLO)
    assert b"connection: close" in data.lower()

"""WSGI served end to end by a forked server: environ, wsgi.input, responses, errors, close(),
file_wrapper, back-pressure. Every combination of parser and ``--threads`` 1 (inline) / 4."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from prefork.server import Server
from prefork.testing import http_request, parse_response, running_server, wait_until

APP = "tests.integration.wsgi_apps:app"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module", params=[("httptools", 1), ("h11", 1), ("httptools", 4),
                                        ("h11", 4)], ids=lambda p: f"{p[0]}-threads{p[1]}")
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    parser, threads = request.param
    with running_server(APP, workers=1, http=parser, threads=threads) as started:
        yield started


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as started:
        yield started


def url(server: Server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data``, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- environ ---------------------------------------------------------------------------------


def test_environ(server: Server) -> None:
    # a raw request: requests would normalise %65 to e
    status, _, body = http_request(server.port, "/%65nviron?a=1&b=%20", host="127.0.0.1",
                                   headers={"X-Thing": "v"})
    assert status == 200
    environ = json.loads(body)
    assert environ["PATH_INFO"] == "/environ" and environ["RAW_URI"] == "/%65nviron?a=1&b=%20"
    assert environ["QUERY_STRING"] == "a=1&b=%20" and environ["SCRIPT_NAME"] == ""
    assert environ["REQUEST_METHOD"] == "GET" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["REMOTE_PORT"].isdigit()
    assert environ["HTTP_X_THING"] == "v" and environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.version"] == [1, 0] and environ["wsgi.input_terminated"] is True
    assert environ["wsgi.multiprocess"] is False and environ["wsgi.run_once"] is False
    threads = server.config.threads
    assert environ["wsgi.multithread"] is (threads > 1)


def test_absolute_form_authority_wins_over_host(server: Server) -> None:
    # RFC 9112 §3.2.2: the target's authority, not the Host field, names the host
    raw = raw_exchange(server.port, b"GET http://origin.example:8080/environ?x=1 HTTP/1.1\r\n"
                       b"Host: other.example\r\nConnection: close\r\n\r\n")
    status, _, body = parse_response(raw)
    assert status == 200
    environ = json.loads(body)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("origin.example", "8080")
    assert environ["HTTP_HOST"] == "origin.example:8080"
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == ("/environ", "x=1")


def test_header_with_underscore_is_dropped(server: Server) -> None:
    status, _, body = http_request(server.port, "/environ",
                                   headers={"X-User": "real", "X_User": "spoofed"})
    assert status == 200 and json.loads(body)["HTTP_X_USER"] == "real"


# -- wsgi.input ------------------------------------------------------------------------------

BODY = b"line one\nline two\n\n" + b"x" * 100_000 + b"\nlast line without newline"


@pytest.mark.parametrize("mode", ["readn", "readline", "readline-n", "readlines", "iter"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_input_modes(server: Server, session: requests.Session, mode: str,
                     framing: str) -> None:
    data = BODY if framing == "length" else iter([BODY[:5], BODY[5:70_000], BODY[70_000:]])
    response = session.post(url(server, f"/echo?mode={mode}"), data=data)
    assert response.status_code == 200 and response.content == BODY


def test_read_without_size(server: Server) -> None:  # outside the validator, which forbids it
    status, _, body = http_request(server.port, "/raw/echo?mode=read", method="POST", body=BODY)
    assert (status, body) == (200, BODY)


def test_expect_100_continue(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /echo?mode=readn HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status, _, body = parse_response(data)
    assert (status, body) == (200, b"hello")


# -- responses -------------------------------------------------------------------------------


def test_keep_alive_and_framing(server: Server, session: requests.Session) -> None:
    first = session.get(url(server, "/hello"))
    assert first.content == b"Hello, world!" and first.headers["content-length"] == "13"
    streamed = session.get(url(server, "/stream?n=3&size=4"))
    assert streamed.content == b"x" * 12 and streamed.headers["transfer-encoding"] == "chunked"
    single = session.get(url(server, "/raw/hello-no-length"))  # one piece: a length is added
    assert single.headers["content-length"] == "13" and single.content == b"Hello, world!"
    assert session.get(url(server, "/write")).content == b"written, then returned"
    empty = session.get(url(server, "/empty"))
    assert empty.status_code == 204 and empty.content == b""


def test_pipelined_requests(server: Server) -> None:
    data = raw_exchange(server.port, b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"
                        b"GET /stream?n=2&size=3 HTTP/1.1\r\nHost: h\r\n\r\n"
                        b"GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.count(b"Hello, world!") == 2 and b"3\r\nxxx\r\n3\r\nxxx\r\n0\r\n\r\n" in data


def test_head_has_no_body(server: Server) -> None:
    status, headers, body = http_request(server.port, "/hello", method="HEAD")
    assert (status, headers["content-length"], body) == (200, "13", b"")


def test_http10_response_is_close_delimited(server: Server) -> None:
    data = raw_exchange(server.port, b"GET /stream?n=3&size=5 HTTP/1.0\r\n\r\n")
    status, headers, body = parse_response(data)
    assert status == 200 and "transfer-encoding" not in headers and body == b"x" * 15


def test_streaming_response_with_back_pressure(server: Server) -> None:
    """A 64 MiB streamed response to a client that does not read: the app is held back (the
    worker's memory does not grow by the body), and in inline mode the loop serves others."""
    pid = server.worker_pids()[0]
    before = _hwm_kib(pid)
    size = 64 << 20
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(f"GET /stream?n={size >> 16}&size=65536 HTTP/1.1\r\nHost: h\r\n"
                     "Connection: close\r\n\r\n".encode())
        time.sleep(0.3)  # the stream is stuck on our full receive buffer now
        started = time.monotonic()
        assert http_request(server.port, "/hello", timeout=5)[2] == b"Hello, world!"
        assert time.monotonic() - started < 2
        received = 0
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    assert received > size
    assert _hwm_kib(pid) - before < 32 * 1024  # far less than the 64 MiB body


def _hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


# -- file_wrapper ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "data.bin"
    path.write_bytes(os.urandom(3 << 20) + b"tail")
    return path


@pytest.mark.parametrize("prefix", ["/raw", ""])  # send_file / iterated through the validator
def test_file_wrapper(server: Server, session: requests.Session, big_file: Path,
                      prefix: str) -> None:
    data = big_file.read_bytes()
    whole = session.get(url(server, f"{prefix}/file?path={big_file}"))
    assert whole.status_code == 200 and whole.content == data
    if prefix:
        assert whole.headers["content-length"] == str(len(data))
    part = session.get(url(server, f"{prefix}/file?path={big_file}&offset=100&length=5000"))
    assert part.content == data[100:5100]
    head = session.head(url(server, f"{prefix}/file?path={big_file}"))
    assert head.status_code == 200 and head.content == b""
    assert session.get(url(server, "/hello")).content == b"Hello, world!"  # still in step


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/fail", "/fail-before-body", "/raw/bad-header"])
def test_error_before_the_head_is_a_500(server: Server, session: requests.Session,
                                        path: str) -> None:
    pids = server.worker_pids()
    response = session.get(url(server, path))
    assert response.status_code == 500 and response.content == b"Internal Server Error"
    assert b"Traceback" not in response.content and "evil" not in response.headers
    assert session.get(url(server, "/hello")).content == b"Hello, world!"
    assert server.worker_pids() == pids


def test_hop_by_hop_headers_from_the_app_are_dropped(server: Server,
                                                     session: requests.Session) -> None:
    response = session.get(url(server, "/raw/bad-header?kind=hop"))
    assert response.status_code == 200 and response.content == b"fine!"
    assert "keep-alive" not in response.headers and "transfer-encoding" not in response.headers


def test_error_after_the_head_aborts(server: Server) -> None:
    data = raw_exchange(server.port, b"GET /fail-in-body HTTP/1.1\r\nHost: h\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"7\r\npartial\r\n" in data
    assert not data.endswith(b"0\r\n\r\n")  # never a well-formed end
    assert http_request(server.port, "/hello")[2] == b"Hello, world!"


def test_exc_info_replaces_the_head(server: Server, session: requests.Session) -> None:
    response = session.get(url(server, "/exc-info"))
    assert (response.status_code, response.content) == (503, b"custom error page")


def test_close_called_when_the_client_leaves(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with sock:
        sock.sendall(f"GET /closing?marker={marker} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    wait_until(marker.exists, timeout=10)
    sent = int(marker.read_text().split()[-1])
    assert sent < 10_000  # stopped early, not run to the end
    assert http_request(server.port, "/hello")[2] == b"Hello, world!"

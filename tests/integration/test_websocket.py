"""WebSocket sessions end to end: a forked server with one worker, real sockets, real clients.

Most tests use the ``websockets`` library's synchronous client as the oracle; where that client
is too polite (it always answers pings, never sends before the handshake, never sends invalid
UTF-8) a raw socket speaks the frames itself.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)
from websockets.sync.client import ClientConnection, connect

from prefork.server import Server
from prefork.testing import http_request, running_server, wait_until
from tests.integration.ws_apps import make_app

pytestmark = pytest.mark.timeout(15)

MAX_SIZE = 64 * 1024


class Served:
    """A running server plus what the tests check it against: its worker and its error log."""

    def __init__(self, server: Server, log_path: Path) -> None:
        self.server = server
        self.port = server.port
        self.log_path = log_path
        self.workers = server.worker_pids()

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def connect(self, path: str, **options: Any) -> ClientConnection:
        options.setdefault("open_timeout", 5)
        options.setdefault("close_timeout", 5)
        client: ClientConnection = connect(self.url(path), proxy=None, **options)
        return client

    def events(self) -> list[dict[str, Any]]:
        status, _, body = http_request(self.port, "/log")
        assert status == 200
        result: list[dict[str, Any]] = json.loads(body)
        return result

    def wait_disconnect(self, path: str, code: int) -> None:
        """Wait until the app at ``path`` has seen ``websocket.disconnect`` with ``code``."""
        wait_until(lambda: any(e["path"] == path and e["code"] == code for e in self.events()),
                   timeout=5)

    def log(self) -> str:
        return self.log_path.read_text()

    def assert_serving(self) -> None:
        """The worker that served the test is the one still serving HTTP: nothing crashed."""
        status, _, body = http_request(self.port, "/")
        assert (status, body) == (200, b"ok")
        assert self.server.worker_pids() == self.workers


@pytest.fixture(scope="module", params=["httptools", "h11"])
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server per HTTP parser: the upgrade hand-off must not depend on which parsed it."""
    log_path = tmp_path_factory.mktemp("ws") / "error.log"
    with running_server(make_app(), workers=1, http=request.param, ws_max_size=MAX_SIZE,
                        errorlog=str(log_path)) as server:
        yield Served(server, log_path)


def serve(tmp_path: Path, **settings: Any) -> Any:
    return running_server(make_app(), workers=1, errorlog=str(tmp_path / "error.log"), **settings)


# -- raw frames, for what a polite client never does ------------------------------------------


def raw_handshake(port: int, path: str, early: bytes = b"") -> tuple[socket.socket, bytes]:
    """Open a socket, send an upgrade request (plus ``early`` bytes), read the 101 head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = b64encode(os.urandom(16)).decode()
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n")
    sock.sendall(head.encode() + early)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed during the handshake"
        data += chunk
    response, _, rest = data.partition(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101 "), response
    return sock, rest


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, unfragmented client frame (RFC 6455 §5.2); payloads under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def read_frame(sock: socket.socket, buffered: bytes = b"") -> tuple[int, bytes, bytes]:
    """(opcode, payload, rest) of the next unmasked server frame; short payloads only."""
    data = buffered
    while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
        chunk = sock.recv(4096)
        assert chunk, "connection closed before a whole frame arrived"
        data += chunk
    size = data[1] & 0x7F
    assert size < 126
    return data[0] & 0x0F, data[2:2 + size], data[2 + size:]


def read_close(sock: socket.socket, buffered: bytes = b"") -> tuple[int, bytes]:
    """Skip to the server's close frame; return its code and reason."""
    while True:
        opcode, payload, buffered = read_frame(sock, buffered)
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0], payload[2:]


# -- the session --------------------------------------------------------------------------------


def test_echo_text_and_bytes(served: Served) -> None:
    with served.connect("/echo") as ws:
        ws.send("héllo")
        assert ws.recv() == "héllo"
        ws.send(b"\x00\xff")
        assert ws.recv() == b"\x00\xff"
        ws.send(["frag", "ment", "ed"])  # one message in three frames
        assert ws.recv() == "fragmented"


def test_subprotocol_negotiated(served: Served) -> None:
    with served.connect("/subprotocol", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert json.loads(ws.recv()) == ["chat.v1", "chat.v2"]
    with served.connect("/subprotocol") as ws:
        assert ws.subprotocol is None
        assert json.loads(ws.recv()) == []


def test_accept_headers(served: Served) -> None:
    with served.connect("/headers") as ws:
        assert ws.response is not None
        assert ws.response.headers["x-extra"] == "yes"
        assert ws.response.headers["server"] == "prefork"


def test_close_before_accept_is_403(served: Served) -> None:
    with pytest.raises(InvalidStatus) as caught:
        served.connect("/reject")
    assert caught.value.response.status_code == 403
    served.assert_serving()


def test_denial_response_extension(served: Served) -> None:
    with pytest.raises(InvalidStatus) as caught:
        served.connect("/deny")
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["content-type"] == "text/plain"
    assert response.body == b"no entry"


def test_exception_before_accept_is_500(served: Served) -> None:
    with pytest.raises(InvalidStatus) as caught:
        served.connect("/boom-early")
    assert caught.value.response.status_code == 500
    wait_until(lambda: "RuntimeError: boom before accept" in served.log(), timeout=5)
    served.assert_serving()


def test_invalid_handshake_is_400(served: Served) -> None:
    """The app accepted, but the request was no valid handshake: websockets' answer goes out."""
    status, _, body = http_request(served.port, "/echo", headers={
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "8"})
    assert status == 400
    assert b"Sec-WebSocket-Version" in body
    served.assert_serving()


def test_upgrade_must_be_a_get_over_http_1_1(served: Served) -> None:
    """RFC 6455 4.1, whichever websockets release is installed: 17 checks the request line
    itself, the releases before it (the last for Python 3.10) are checked by the cycle."""
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": b64encode(os.urandom(16)).decode(),
                 "Sec-WebSocket-Version": "13"}
    status, headers, _ = http_request(served.port, "/echo", method="POST", headers=handshake)
    assert (status, headers.get("allow")) == (405, "GET")
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.0\r\nHost: x\r\n" + b"".join(
            f"{name}: {value}\r\n".encode() for name, value in handshake.items()) + b"\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 505 ")
    served.assert_serving()


def test_client_close_reaches_app(served: Served) -> None:
    with served.connect("/echo") as ws:
        ws.send("x")
        assert ws.recv() == "x"
        ws.close(code=4002, reason="done")
    served.wait_disconnect("/echo", 4002)
    assert any(e["code"] == 4002 and e["reason"] == "done" for e in served.events())


def test_server_close_reaches_client(served: Served) -> None:
    with served.connect("/close") as ws, pytest.raises(ConnectionClosed) as caught:
        ws.recv()
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4001, "bye")
    served.wait_disconnect("/close", 4001)  # the client echoed it


def test_exception_after_accept_closes_1011(served: Served) -> None:
    with served.connect("/boom") as ws, pytest.raises(ConnectionClosedError) as caught:
        ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011
    wait_until(lambda: "RuntimeError: boom after accept" in served.log(), timeout=5)
    assert "Exception in ASGI application (WebSocket /boom)" in served.log()
    served.assert_serving()


def test_message_out_of_order_closes_1011(served: Served) -> None:
    with served.connect("/twice") as ws, pytest.raises(ConnectionClosedError) as caught:
        ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011
    wait_until(lambda: "unexpected ASGI message 'websocket.accept'" in served.log(), timeout=5)


def test_app_returning_closes_1000(served: Served) -> None:
    with served.connect("/leave") as ws, pytest.raises(ConnectionClosedOK) as caught:
        ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1000


def test_message_too_big_closes_1009(served: Served) -> None:
    with served.connect("/echo", compression=None) as ws:
        ws.send(b"x" * MAX_SIZE)  # exactly the limit passes
        assert len(ws.recv()) == MAX_SIZE
        ws.send(b"x" * (MAX_SIZE + 1))
        with pytest.raises(ConnectionClosedError) as caught:
            ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
    served.wait_disconnect("/echo", 1009)
    served.assert_serving()


def test_invalid_utf8_closes_1007(served: Served) -> None:
    sock, rest = raw_handshake(served.port, "/echo")
    with sock:
        sock.sendall(client_frame(0x1, b"\xff\xfe"))
        code, _ = read_close(sock, rest)
    assert code == 1007


def test_frames_sent_with_the_request_head(served: Served) -> None:
    """A client that does not wait for the 101 loses nothing (bytes held until accept)."""
    sock, rest = raw_handshake(served.port, "/echo", early=client_frame(0x1, b"early"))
    with sock:
        opcode, payload, rest = read_frame(sock, rest)
        assert (opcode, payload) == (0x1, b"early")
        sock.sendall(client_frame(0x8, struct.pack("!H", 1000)))
        assert read_close(sock, rest)[0] == 1000
        assert sock.recv(16) == b""  # and the server closed TCP after the closing handshake


def test_permessage_deflate_negotiated(served: Served) -> None:
    text = "compressible " * 1000
    with served.connect("/echo") as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
        ws.send(text)
        assert ws.recv() == text


def test_state_and_extensions_in_scope(served: Served) -> None:
    with served.connect("/state") as ws:
        info = json.loads(ws.recv())
    assert info["state"] == {"greeting": "hello"}
    assert info["extensions"] == {"websocket.http.response": {}}


def test_slow_app_gets_every_message(served: Served) -> None:
    """More messages than the queue holds while the app sleeps: reading pauses and resumes."""
    with served.connect("/slow", compression=None) as ws:
        for i in range(100):
            ws.send(bytes([i % 256]) * 1024)
        assert ws.recv(timeout=5) == "100"
    served.assert_serving()


# -- settings and the worker's life ------------------------------------------------------------


def test_keepalive_ping_and_timeout(tmp_path: Path) -> None:
    with serve(tmp_path, ws_ping_interval=0.1, ws_ping_timeout=0.2,
               ws_per_message_deflate=False) as server:
        port = server.port
        # a client that answers pings stays connected across several intervals
        with connect(f"ws://127.0.0.1:{port}/echo", proxy=None, ping_interval=None) as ws:
            assert ws.protocol.extensions == []  # deflate off: not negotiated
            time.sleep(0.6)
            ws.send("still here")
            assert ws.recv() == "still here"
        # one that never answers is pinged, then closed with 1011 and dropped
        sock, rest = raw_handshake(port, "/echo")
        with sock:
            started = time.monotonic()
            opcode, _, rest = read_frame(sock, rest)
            assert opcode == 0x9
            code, reason = read_close(sock, rest)
            assert (code, reason) == (1011, b"keepalive ping timeout")
            assert time.monotonic() - started < 2
            assert sock.recv(16) == b""


def test_drain_closes_with_1001(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        with connect(f"ws://127.0.0.1:{server.port}/echo", proxy=None) as ws:
            ws.send("hi")
            assert ws.recv() == "hi"
            started = time.monotonic()
            assert server.stop() == 0
            assert time.monotonic() - started < 5  # the closing handshake, not a timeout
            with pytest.raises(ConnectionClosedOK) as caught:
                ws.recv()
        assert caught.value.rcvd is not None
        assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (1001, "going away")

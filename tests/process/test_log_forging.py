"""Client-chosen bytes never forge an error-log or access-log line, nor reach a log file as a
raw control character (CR, LF, ESC, C1): a real server, real requests, the files read back."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prefork.testing import http_request, running_server, wait_until
from tests.apps.lifespan import acknowledge_lifespan

pytestmark = pytest.mark.timeout(60)

# Percent-decoded into the ASGI path: a CRLF and a whole fake error-log line, then ESC [ 2 J
# (a terminal's "clear screen").
FORGED = "%0d%0a%5b2026-01-01%2000:00:00%20+0000%5d%20%5b1%5d%20%5bCRITICAL%5d%20forged%1b%5b2J"
FORGED_LINE = re.compile(r"^\[[^\]]*\] \[\d+\] \[CRITICAL\] forged", re.MULTILINE)
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # anything but LF and HTAB


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    path = scope["path"]
    if scope["type"] == "websocket":
        await receive()
        raise RuntimeError("websocket boom")
    if path.startswith("/raise"):
        raise RuntimeError("boom")
    if path.startswith("/incomplete"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        return
    if path.startswith("/badhead"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"bad name", b"v")]})
        await send({"type": "http.response.body", "body": b""})  # the head goes out with it
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["PATH_INFO"].startswith("/raise"):
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def raw_request(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def assert_clean(text: str) -> None:
    assert FORGED_LINE.search(text) is None, text
    bad = RAW_CONTROL.search(text)
    assert bad is None, (bad, text)


def test_asgi_error_and_access_logs_escape_what_clients_send(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    access_format = '%(r)s %(U)s %(q)s "%({x-note}i)s" %(s)s'
    with running_server(asgi_app, workers=1, errorlog=str(error_log), accesslog=str(access_log),
                        access_log_format=access_format) as server:
        for route in ("raise", "incomplete", "badhead"):
            status, _, _ = http_request(server.port, f"/{route}{FORGED}?q={FORGED}",
                                        headers={"X-Note": "\x9b2J\xa0caf\xe9"})
            assert status == 500
        handshake = (f"GET /ws{FORGED} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        raw_request(server.port, handshake)
        wait_until(lambda: error_log.read_text().count("\\x0d\\x0a") >= 4, timeout=20)
        wait_until(lambda: access_log.exists() and
                   len(access_log.read_text().splitlines()) >= 3, timeout=20)
    errors = error_log.read_text(encoding="utf-8")
    assert_clean(errors)
    for message in ("Exception in ASGI application (GET /raise\\x0d\\x0a[2026",
                    "without completing its response (GET /incomplete\\x0d\\x0a",
                    "invalid response head (GET /badhead\\x0d\\x0a",
                    "(WebSocket /ws\\x0d\\x0a"):
        assert message in errors, errors
    assert "forged\\x1b[2J" in errors
    accesses = access_log.read_text(encoding="utf-8")
    assert_clean(accesses)
    assert '"\\x9b2J\xa0caf\xe9"' in accesses  # C1 escaped, printable Latin-1 kept
    assert len(accesses.splitlines()) == 3, accesses


def test_wsgi_error_log_escapes_what_clients_send(tmp_path: Path) -> None:
    error_log = tmp_path / "error.log"
    with running_server(wsgi_app, workers=1, errorlog=str(error_log)) as server:
        # A target with a raw high byte in its query is refused by llhttp; percent-escapes and a
        # C1 byte in a header reach the app.
        status, _, _ = http_request(server.port, f"/raise{FORGED}")
        assert status == 500
        wait_until(lambda: "Error handling request" in error_log.read_text(), timeout=20)
    errors = error_log.read_text(encoding="utf-8")
    assert_clean(errors)
    assert f"Error handling request GET /raise{FORGED}" in errors

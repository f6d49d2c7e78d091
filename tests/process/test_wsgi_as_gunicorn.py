"""What a gunicorn user's WSGI app notices, with gunicorn's meanings: an ``Upgrade: websocket``
request is an ordinary request that the app answers (never a call as ASGI, never a traceback
per request); ``REMOTE_ADDR`` and the access log's ``%(h)s`` are the peer even behind a
trusted proxy, which sets ``wsgi.url_scheme`` only; ``SERVER_SOFTWARE`` is there; hooks get
the loaded app as ``worker.wsgi``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from prefork import __version__
from prefork.testing import http_request, parse_response, running_server, wait_until

APP = "tests.apps.wsgiprobe:app"
UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``; everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 4])
def test_an_upgrade_request_is_answered_by_the_app(tmp_path: Path, threads: int) -> None:
    error_log = tmp_path / "error.log"
    with running_server(APP, workers=1, threads=threads, errorlog=str(error_log),
                        loglevel="debug") as server:
        for _ in range(20):
            status, headers, body = parse_response(_exchange(server.port, UPGRADE))
            assert status == 200, body
            seen = json.loads(body)
            assert seen["HTTP_UPGRADE"] == "websocket" and seen["HTTP_CONNECTION"] == "Upgrade"
            assert headers["connection"] == "close"  # the connection is not reused after it
        assert http_request(server.port, "/")[0] == 200
    log = error_log.read_text()
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]


def _post_worker_init(worker: Any) -> None:
    wsgi = worker.wsgi
    Path(worker.cfg.raw_env[0].partition("=")[2]).write_text(
        json.dumps({"module": wsgi.__module__, "name": wsgi.__name__}))


@pytest.mark.timeout(60)
def test_remote_addr_is_the_peer_and_the_scheme_follows_the_proxy(tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    with running_server(APP, workers=1, accesslog=str(access_log)) as server:
        # from loopback, trusted by --forwarded-allow-ips' default, as nginx on the same host
        status, _, body = http_request(server.port, "/", headers={
            "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example"})
        assert status == 200
        seen = json.loads(body)
        assert seen["REMOTE_ADDR"] == "127.0.0.1" and seen["REMOTE_PORT"].isdigit()
        assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
        assert seen["wsgi.url_scheme"] == "https"
        assert seen["HTTP_HOST"].startswith("127.0.0.1:")
        plain = json.loads(http_request(server.port, "/")[2])
        assert plain["REMOTE_ADDR"] == "127.0.0.1" and plain["wsgi.url_scheme"] == "http"

        def logged() -> list[str] | None:
            lines = access_log.read_text().splitlines() if access_log.exists() else []
            return lines if len(lines) >= 2 else None

        assert [line.split()[0] for line in wait_until(logged, timeout=10)] == [
            "127.0.0.1", "127.0.0.1"]


def _post_worker_init(worker: Any) -> None:
    wsgi = worker.wsgi
    Path(os.environ["PREFORK_TEST_MARKERS"]).write_text(
        json.dumps({"module": wsgi.__module__, "name": wsgi.__name__}))


@pytest.mark.timeout(60)
def test_server_software_and_worker_wsgi(tmp_path: Path) -> None:
    markers = tmp_path / "worker.json"
    with running_server(APP, workers=1, post_worker_init=_post_worker_init,
                        raw_env=(f"PREFORK_TEST_MARKERS={markers}",)) as server:
        seen = json.loads(http_request(server.port, "/")[2])
        assert seen["SERVER_SOFTWARE"] == f"prefork/{__version__}"
        assert json.loads(markers.read_text()) == {"module": "tests.apps.wsgiprobe",
                                                   "name": "app"}

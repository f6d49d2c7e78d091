"""HTTP/2 from a forked server: TLS with ALPN (the client's choice of h2 or http/1.1), h2c, the
access log's protocol, gunicorn's http_protocols, and a graceful stop that sends GOAWAY and
lets the stream in flight finish."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from prefork.testing import http_request, running_server, wait_until
from tests.integration.h2client import H2Client

APP = "tests.apps.pidapp:app"
WSGI_APP = "tests.apps.wsgiecho:app"


def _certificates(tmp_path: Path) -> tuple[str, str, str]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = [tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem")]
    cert.cert_chain_pems[0].write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    return str(paths[0]), str(paths[1]), str(paths[2])


def _tls(port: int, ca: str, protocols: list[str]) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(protocols)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.timeout(60)
def test_tls_alpn_offers_h2_and_http11(tmp_path: Path) -> None:
    cert, key, ca = _certificates(tmp_path)
    access = tmp_path / "access.log"
    with running_server(APP, workers=1, http2=True, certfile=cert, keyfile=key,
                        accesslog=str(access),
                        access_log_format='%(H)s %(s)s "%(r)s"') as server:
        sock = _tls(server.port, ca, ["h2", "http/1.1"])
        assert sock.selected_alpn_protocol() == "h2"
        with H2Client(sock=sock) as client:
            reply = client.get("/", scheme="https")
            assert reply.status == 200 and reply.body.isdigit()
        sock = _tls(server.port, ca, ["http/1.1"])
        assert sock.selected_alpn_protocol() == "http/1.1"
        with sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ")
        lines = wait_until(lambda: len(access.read_text().splitlines()) >= 2 and
                           access.read_text().splitlines(), 10)
        assert lines[0] == 'HTTP/2 200 "GET / HTTP/2"'
        assert lines[1] == 'HTTP/1.1 200 "GET / HTTP/1.1"'


@pytest.mark.timeout(60)
def test_tls_without_http2_offers_only_http11(tmp_path: Path) -> None:
    cert, key, ca = _certificates(tmp_path)
    with running_server(APP, workers=1, certfile=cert, keyfile=key) as server, \
            _tls(server.port, ca, ["h2", "http/1.1"]) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


@pytest.mark.timeout(60)
def test_h2c_from_a_gunicorn_config_and_wsgi(tmp_path: Path) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("http_protocols = 'h2,h1'\nhttp2_max_concurrent_streams = 7\n")
    with running_server(WSGI_APP, workers=1, interface="wsgi", config=str(config),
                        threads=2) as server:
        with H2Client(server.port) as client:
            assert client.get("/").body == b"HTTP/2 0"
            assert client.h2.remote_settings.max_concurrent_streams == 7
            sid = client.request("POST", "/", body=b"e" * 300_000)  # read by a pool thread
            assert client.wait(sid).body == b"HTTP/2 300000"
        assert http_request(server.port, "/")[2] == b"HTTP/1.1 0"  # HTTP/1.1 beside it


@pytest.mark.timeout(60)
def test_graceful_stop_sends_goaway_and_finishes_the_stream(tmp_path: Path) -> None:
    with running_server(APP, workers=1, http2=True, graceful_timeout=10) as server:
        client = H2Client(server.port, timeout=10)
        assert client.get("/").status == 200
        sid = client.request("GET", "/sleep")  # answered after 1 s
        time.sleep(0.2)
        stopper = threading.Thread(target=server.stop, kwargs={"timeout": 15.0})
        stopper.start()
        with client:
            reply = client.wait(sid)
            assert reply.status == 200
            while client.read():
                pass
            assert client.goaway is not None and client.goaway.last_stream_id == sid
        stopper.join(20)

"""--health-path and --shutdown-delay: what a Kubernetes probe and a draining client see."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from prefork.testing import http_request, is_alive, running_server, wait_until

APP = "tests.apps.pidapp:app"
HEALTH = "/_prefork/health"


def _keep_alive_get(sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on an open keep-alive connection; reads one Content-Length response."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


@pytest.mark.timeout(60)
def test_health_path_is_answered_by_the_worker_not_the_app(tmp_path) -> None:
    access = tmp_path / "access.log"
    with running_server(APP, workers=1, health_path=HEALTH, accesslog=str(access)) as server:
        status, headers, body = http_request(server.port, HEALTH)
        assert (status, body) == (200, b"ok\n")
        assert headers["cache-control"] == "no-store"
        # the query string is ignored; HEAD has no body; other methods are refused
        assert http_request(server.port, HEALTH + "?probe=1")[0] == 200
        assert http_request(server.port, HEALTH, method="HEAD")[2] == b""
        status, headers, _ = http_request(server.port, HEALTH, method="POST", body=b"x")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        # a longer path is the app's (which answers with its pid)
        status, _, body = http_request(server.port, HEALTH + "z")
        assert status == 200 and body.isdigit()
        wait_until(lambda: access.exists() and access.read_text().count("\n") >= 1, timeout=10)
        time.sleep(0.2)
        assert HEALTH + " " not in access.read_text()  # probes stay out of the access log


@pytest.mark.timeout(60)
def test_health_path_off_by_default_reaches_the_app() -> None:
    with running_server(APP, workers=1) as server:
        status, _, body = http_request(server.port, HEALTH)
        assert status == 200 and body.isdigit()


@pytest.mark.timeout(60)
def test_sigterm_with_shutdown_delay_fails_health_and_keeps_serving() -> None:
    with running_server(APP, workers=2, health_path=HEALTH, shutdown_delay=2.0) as server:
        pids = server.worker_pids()
        keep_alive = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        assert _keep_alive_get(keep_alive, "/")[0] == 200

        failures: list[str] = []
        served = 0
        stop = threading.Event()

        def client() -> None:
            nonlocal served
            while not stop.is_set():
                try:
                    status = http_request(server.port, "/", timeout=5)[0]
                except OSError as exc:  # refused once listeners close: the stop began
                    if not stop.is_set():
                        failures.append(repr(exc))
                    return
                if status != 200:
                    failures.append(str(status))
                served += 1

        thread = threading.Thread(target=client)
        thread.start()
        signalled = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        wait_until(lambda: http_request(server.port, HEALTH)[0] == 503, timeout=5)
        flipped = time.monotonic() - signalled
        # the open keep-alive connection still gets its answer, then is closed by the server
        status, headers, _ = _keep_alive_get(keep_alive, "/")
        assert status == 200 and headers.get("connection") == "close"
        assert keep_alive.recv(1) == b""
        keep_alive.close()
        time.sleep(1.0)
        assert all(is_alive(pid) for pid in pids)  # still inside the delay: still serving
        before_stop = served
        assert http_request(server.port, "/")[0] == 200
        stop.set()
        thread.join(timeout=10)
        assert failures == [] and before_stop > 10
        assert flipped < 1.0
        wait_until(lambda: not any(is_alive(pid) for pid in pids), timeout=15)
        assert time.monotonic() - signalled >= 2.0
        assert server.stop(timeout=10) == 0


@pytest.mark.timeout(60)
def test_a_second_sigterm_skips_the_delay() -> None:
    with running_server(APP, workers=1, shutdown_delay=30.0) as server:
        os.kill(server.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert http_request(server.port, "/")[0] == 200
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert server.stop(timeout=10) == 0
        assert time.monotonic() - started < 5

"""The access log: off by default, gunicorn's lines for gunicorn's format, reopened on USR1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from prefork.testing import http_request, parse_response, running_server, wait_until

ROOT = Path(__file__).resolve().parents[2]
# every atom that does not depend on time, pid or the client's port
FORMAT = ('%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s '
          '%(H)s %({x-request-id}i)s %({x-trace}o)s %({content-type}o)s')
REQUEST = (b"GET /caf%C3%A9/items?page=2&q=a+b HTTP/1.1\r\nHost: shop.example\r\n"
           b"User-Agent: curl/8.5\r\nReferer: https://shop.example/\r\n"
           b"Authorization: Basic YWxpY2U6czNjcmV0\r\nX-Request-ID: 7f1c\r\n"
           b"Connection: close\r\n\r\n")


def _send(port: int, raw: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(data)[0]


def _gunicorn_line(tmp_path: Path) -> str:
    pytest.importorskip("gunicorn")
    log, errors = tmp_path / "gunicorn-access.log", tmp_path / "gunicorn-error.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.apps.wsgiapp:app", "-b", "127.0.0.1:0",
         "-w", "1", "--access-logfile", str(log), "--access-logformat", FORMAT,
         "--error-logfile", str(errors)], cwd=ROOT, start_new_session=True)
    try:
        text = wait_until(lambda: "Listening at:" in _read(errors) and _read(errors), timeout=20)
        port = int(text.split("Listening at: http://127.0.0.1:")[1].split()[0])
        wait_until(lambda: "Booting worker" in _read(errors), timeout=20)
        assert _send(port, REQUEST) == 201
        return wait_until(lambda: _read(log).strip(), timeout=10)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.timeout(60)
def test_same_line_as_gunicorn_for_the_same_request(tmp_path: Path) -> None:
    expected = _gunicorn_line(tmp_path)
    log = tmp_path / "prefork-access.log"
    with running_server("tests.apps.wsgiapp:app", workers=1, accesslog=str(log),
                        access_log_format=FORMAT) as server:
        assert _send(server.port, REQUEST) == 201
        line = wait_until(lambda: _read(log).strip(), timeout=10)
    assert line == expected
    assert 'alice "GET /caf%C3%A9/items?page=2&q=a+b HTTP/1.1" 201 18 18' in line


@pytest.mark.timeout(60)
def test_off_by_default_json_preset_and_usr1(tmp_path: Path, capfd) -> None:
    log = tmp_path / "access.log"
    with running_server("tests.apps.pidapp:app", workers=1) as server:
        http_request(server.port, "/quiet")
    assert "/quiet" not in capfd.readouterr().out
    with running_server("tests.apps.pidapp:app", workers=1, accesslog=str(log),
                        access_log_format="json") as server:
        http_request(server.port, "/one", headers={"X-Request-ID": "r-1"})
        record = json.loads(wait_until(lambda: _read(log).strip(), timeout=10))
        assert (record["path"], record["status"], record["request_id"]) == ("/one", 200, "r-1")
        log.rename(tmp_path / "access.log.1")
        os.kill(server.pid, signal.SIGUSR1)
        wait_until(lambda: log.exists(), timeout=10)
        http_request(server.port, "/two")
        assert '"/two"' in wait_until(lambda: _read(log), timeout=10)

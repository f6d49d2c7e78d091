"""Hostile or careless input to the control socket, the metrics port and the worker count: each
gets a clear refusal, and the arbiter goes on supervising and serving."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prefork.testing import http_request, running_server, wait_until
from tests.process.conftest import ROOT

APP = "tests.apps.pidapp:app"

HOSTILE_LINES: list[tuple[bytes, str]] = [
    (b"[" * 2000 + b"\n", "nested deeper"),
    (b"{" * 2000 + b"\n", "nested deeper"),
    (b'{"command": "scale", "a": ' + b"[" * 50 + b"]" * 50 + b"}\n", "nested deeper"),
    (b'{"command": "scale", "change": ' + b"9" * 4000 + b"}\n", "longer than 12 digits"),
    (b'{"command": "scale", "workers": -' + b"9" * 4000 + b"}\n", "longer than 12 digits"),
    (b'{"command": "scale", "workers": 1' + b"0" * 300 + b".5}\n", "longer than 12 digits"),
    (b'{"command": "scale", "workers": 1e308}\n', "must be an integer"),
    (b'{"command": "scale", "workers": NaN}\n', "NaN is not a number"),
    (b'{"command": "scale", "change": Infinity}\n', "Infinity is not a number"),
    (b'{"command": "scale", "workers": 500}\n', "more than max_workers"),
    (b'{"command": "scale", "change": 999999999999}\n', "more than max_workers"),
    (b'{"command": "recycle", "pid": 99999999999}\n', "no worker with pid"),
    (b'{"command": "scale"}\n', 'scale needs "workers"'),
    (b'"\\\n', "not a JSON object"),
    (b"\xff\xfe\x00\n", "not a JSON object"),
]


def _exchange(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    return answer


def _ctl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "prefork", "ctl", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_hostile_control_lines_are_refused_and_supervision_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with running_server(APP, workers=1, max_workers=3, control_socket=str(path)) as server:
        worker = server.worker_pids()[0]
        for line, expected in HOSTILE_LINES:
            started = time.monotonic()
            reply = _exchange(path, line)
            assert expected in reply.get("error", ""), (line[:80], reply)
            assert time.monotonic() - started < 5, line[:80]
            status = _exchange(path, b'{"command": "status"}\n')
            assert status["target"] == 1 and [w["pid"] for w in status["workers"]] == [worker]
            assert http_request(server.port, "/")[0] == 200
        refused = _ctl("--control-socket", path, "scale", "500")
        assert refused.returncode != 0
        assert "more than max_workers (3, --max-workers)" in refused.stderr, refused.stderr
        # still supervising: a crashed worker is replaced, a valid scale is carried out
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: (pids := server.worker_pids()) and worker not in pids, timeout=15)
        assert _exchange(path, b'{"command": "scale", "workers": 3}\n')["target"] == 3
        wait_until(lambda: len([w for w in server.stats()["workers"]
                                if w["state"] == "serving"]) == 3, timeout=20)
        assert server.stats()["breaker"] == "closed"


@pytest.mark.timeout(60)
def test_ttin_and_the_api_stop_at_max_workers(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    with running_server(APP, workers=1, max_workers=2, errorlog=str(log)) as server:
        os.kill(server.pid, signal.SIGTTIN)
        wait_until(lambda: server.stats()["target"] == 2, timeout=10)
        os.kill(server.pid, signal.SIGTTIN)
        wait_until(lambda: "TTIN: cannot scale to 3 workers" in log.read_text(), timeout=10)
        assert server.stats()["target"] == 2
        with pytest.raises(Exception, match="more than max_workers"):
            server.scale(10)
        assert server.stats()["target"] == 2
        assert http_request(server.port, "/")[0] == 200


@pytest.mark.timeout(60)
def test_workers_above_max_workers_is_a_one_line_start_up_error(cli) -> None:
    process = cli(APP, "--bind", "127.0.0.1:0", "--workers", "500", "--no-control-socket")
    assert process.proc.wait(timeout=30) != 0
    output = process.output().strip()
    assert "workers: 500 is more than max_workers (" in output, output
    assert "raise --max-workers" in output and "Traceback" not in output, output
    assert "Booting worker with pid" not in output


@pytest.mark.timeout(60)
def test_hostile_bytes_to_the_metrics_port_never_stop_supervision() -> None:
    with running_server(APP, workers=1, metrics_bind="127.0.0.1:0") as server:
        port = server.stats()["metrics_port"]
        worker = server.worker_pids()[0]
        hostile = [b"[" * 2000 + b"\r\n\r\n", b"GET /metrics HTTP/1.1\r\n" + b"x" * 20000,
                   b"\xff" * 9000, b"GET " + b"/" * 8000 + b" HTTP/1.1\r\n\r\n",
                   b"GET /metrics?" + b"9" * 4000 + b" HTTP/1.1\r\n\r\n", b"\r\n\r\n"]
        for data in hostile:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                try:
                    sock.sendall(data)
                    sock.shutdown(socket.SHUT_WR)
                    answer = sock.recv(100)
                except ConnectionResetError:
                    answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer
            status, _, body = http_request(port, "/metrics")
            assert status == 200 and b"prefork_workers" in body
            assert server.worker_pids() == [worker]
            assert http_request(server.port, "/")[0] == 200

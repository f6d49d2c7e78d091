"""A worker at its open-files limit says so in the error log, at most once a second: in
reuseport mode libuv accepts and closes each connection it has no descriptor for and tells no
one; in roundrobin mode the descriptors the arbiter passes do not fit."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from prefork.testing import http_request, running_server, wait_until

APP = "tests.apps.pidapp:app"
MESSAGE = "at the open-files limit"


def lower_open_files_limit(worker: Any) -> None:
    """post_worker_init: room for a few connections more than the worker holds now."""
    in_use = len(os.listdir("/proc/self/fd"))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 4, hard))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dispatch", ["reuseport", "roundrobin"])
def test_a_worker_at_the_open_files_limit_logs_it_once_a_second(tmp_path: Path,
                                                                dispatch: str) -> None:
    log = tmp_path / "error.log"
    with running_server(APP, workers=1, errorlog=str(log), dispatch=dispatch,
                        post_worker_init=lower_open_files_limit) as server:
        assert http_request(server.port, "/")[0] == 200
        held: list[socket.socket] = []
        try:
            for _ in range(12):  # more than the worker can hold: the last ones are dropped
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                held.append(sock)
            wait_until(lambda: MESSAGE in log.read_text(), timeout=15)
            first = time.monotonic()
            time.sleep(3)  # the condition lasts: the line is repeated, but not more than 1/s
            lines = log.read_text().count(MESSAGE)
            assert 1 <= lines <= (time.monotonic() - first) + 2, log.read_text()
        finally:
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.close()
        wait_until(lambda: serves(server.port), timeout=15)  # once the held ones are closed


def serves(port: int) -> bool:
    try:
        return http_request(port, "/", timeout=5)[0] == 200
    except OSError:
        return False

"""Keep-alive clients across HUP and TTOU: a draining worker answers every request that reaches
it (with ``Connection: close``) and closes a connection only after that answer or once it has
stayed idle, so a client never sees its connection closed under a request it sent."""

from __future__ import annotations

import http.client
import os
import signal
import threading
from collections.abc import Callable

import pytest

from prefork.server import Server
from prefork.testing import running_server, wait_until

APP = "tests.apps.pidapp:app"


def _loop(port: int, stop: threading.Event, served: list[int], errors: list[str]) -> None:
    """GETs one after another on a keep-alive connection, reconnecting only when an answer
    said ``Connection: close`` (http.client does that by itself); no retries."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while not stop.is_set():
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(f"status {response.status}")
                served.append(1)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(repr(exc))
                conn.close()
    finally:
        conn.close()


def _serving(server: Server) -> set[int]:
    return {w["pid"] for w in server.stats()["workers"] if w["state"] == "serving"}


def _under_load(server: Server, change: Callable[[], None], rounds: int) -> tuple[int, list[str]]:
    stop, served, errors = threading.Event(), [], []  # type: ignore[var-annotated]
    clients = [threading.Thread(target=_loop, args=(server.port, stop, served, errors))
               for _ in range(4)]
    for client in clients:
        client.start()
    try:
        wait_until(lambda: len(served) > 50, timeout=10)
        for _ in range(rounds):
            change()
    finally:
        stop.set()
        for client in clients:
            client.join(15)
    return len(served), errors


@pytest.mark.timeout(180)
def test_keep_alive_clients_see_no_error_across_hups() -> None:
    with running_server(APP, workers=2) as server:
        def reload() -> None:
            old = set(server.worker_pids())
            os.kill(server.pid, signal.SIGHUP)
            wait_until(lambda: len(_serving(server)) == 2 and not _serving(server) & old
                       and not set(server.worker_pids()) & old, timeout=30)

        served, errors = _under_load(server, reload, 5)
        print(f"5 HUPs: {served} keep-alive requests, {len(errors)} errors")
        assert not errors, errors[:5]


@pytest.mark.timeout(180)
def test_keep_alive_clients_see_no_error_across_ttou_and_ttin() -> None:
    with running_server(APP, workers=2) as server:
        def shrink_and_grow() -> None:
            os.kill(server.pid, signal.SIGTTOU)
            wait_until(lambda: len(server.worker_pids()) == 1, timeout=30)
            os.kill(server.pid, signal.SIGTTIN)
            wait_until(lambda: len(_serving(server)) == 2, timeout=30)

        served, errors = _under_load(server, shrink_and_grow, 5)
        print(f"5 TTOU/TTIN: {served} keep-alive requests, {len(errors)} errors")
        assert not errors, errors[:5]

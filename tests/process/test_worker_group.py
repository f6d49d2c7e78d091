"""``--kill-worker-group``: what the app started ends with its worker; without it, it outlives
the server's stop (gunicorn's behaviour, kept as the default)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

import pytest

from prefork.testing import http_request, is_alive, running_server, wait_until
from tests.apps.lifespan import acknowledge_lifespan


async def spawning_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Starts ``sleep 60`` (as an app's helper or a leaked child would be) and answers its pid."""
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    child = subprocess.Popen(["sleep", "60"])
    body = str(child.pid).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def spawned_child(**settings: Any) -> tuple[int, bool]:
    """The pid the app started, and whether it is still alive a moment after the stop."""
    with running_server(spawning_app, workers=1, **settings) as server:
        status, _, body = http_request(server.port, "/")
        assert status == 200
        child = int(body)
        assert is_alive(child)
        server.stop(timeout=15)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not is_alive(child), timeout=5)
    return child, is_alive(child)


@pytest.mark.timeout(60)
def test_kill_worker_group_ends_what_the_app_started() -> None:
    child, alive = spawned_child(kill_worker_group=True)
    assert not alive, f"pid {child} outlived its worker"


@pytest.mark.timeout(60)
def test_without_it_what_the_app_started_outlives_the_stop() -> None:
    child, alive = spawned_child()
    try:
        assert alive
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


@pytest.mark.timeout(60)
def test_a_killed_workers_group_is_killed_by_the_arbiter() -> None:
    with running_server(spawning_app, workers=1, kill_worker_group=True) as server:
        [worker] = server.worker_pids()
        status, _, body = http_request(server.port, "/")
        assert status == 200
        child = int(body)
        os.kill(worker, signal.SIGKILL)  # no chance to end its group itself
        try:
            wait_until(lambda: not is_alive(child), timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

"""examples/sessions: a session kept in Redis survives requests landing on different workers;
one kept in a worker's memory does not (the demonstration the example's README describes).

Redis listens on a Unix socket in a fresh directory: its ``--port 0`` turns TCP off, so there is
no port to pick and no bind-close-reuse race.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from prefork.server import Server
from prefork.testing import http_request, running_server, wait_until

WORKERS = 3
MAX_REQUESTS = 300  # fresh connections spread over the workers by SO_REUSEPORT's hash


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a Unix socket; killed by pid after."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.geteuid() == 0 or os.environ.get("CI"):
            pytest.fail("redis-server is not installed: `make redis` installs it "
                        "(apt-get install redis-server)")
        pytest.skip("redis-server is not installed, and installing it (`make redis`) needs root")
    # a short path: a Unix socket address is limited to 107 bytes
    with tempfile.TemporaryDirectory(prefix="prefork-redis-") as directory:
        socket_path = os.path.join(directory, "redis.sock")
        log = open(os.path.join(directory, "redis.log"), "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", socket_path, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", directory, "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(unix_socket_path=socket_path)
        try:
            wait_until(lambda: _pings(client, process), timeout=10)
            yield f"unix://{socket_path}"
        finally:
            client.close()
            process.kill()
            process.wait(timeout=10)
            log.close()


def _pings(client: redis.Redis, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "redis-server exited at start-up"
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _login(server: Server, user: str) -> tuple[str, int]:
    status, headers, body = http_request(server.port, "/login", method="POST",
                                         body=json.dumps({"user": user}).encode(),
                                         headers={"Content-Type": "application/json"})
    assert status == 200, body
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("session=")
    return cookie, json.loads(body)["pid"]


def _me(server: Server, cookie: str) -> tuple[int, dict[str, Any]]:
    status, _, body = http_request(server.port, "/me", headers={"Cookie": cookie})
    return status, json.loads(body)


@pytest.mark.timeout(60)
def test_redis_sessions_count_across_workers(redis_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)  # read by each worker at lifespan startup
    with running_server("examples.sessions.app:with_redis", workers=WORKERS) as server:
        cookie, _ = _login(server, "ada")
        served_by: list[int] = []
        visits: list[int] = []
        deadline = time.monotonic() + 30
        while len(set(served_by)) < WORKERS or len(visits) < 20:
            assert len(visits) < MAX_REQUESTS and time.monotonic() < deadline
            status, answer = _me(server, cookie)
            assert status == 200, answer
            assert answer["user"] == "ada"
            served_by.append(answer["pid"])
            visits.append(answer["visits"])
        # every worker served the session, and the count never skipped or went back
        assert set(served_by) == set(server.worker_pids())
        assert visits == list(range(1, len(visits) + 1))


@pytest.mark.timeout(60)
def test_in_memory_sessions_break_across_workers() -> None:
    with running_server("examples.sessions.app:in_memory", workers=WORKERS) as server:
        cookie, login_pid = _login(server, "ada")
        answers: list[tuple[int, int, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        while len({pid for pid, _, _ in answers} - {login_pid}) < WORKERS - 1:
            assert len(answers) < MAX_REQUESTS and time.monotonic() < deadline
            status, answer = _me(server, cookie)
            answers.append((answer["pid"], status, answer))
        # the worker that logged us in counts on; every other one has never heard of the
        # session, so the client sees itself logged in, then out, then in again
        at_login_worker = [(status, answer.get("visits")) for pid, status, answer in answers
                           if pid == login_pid]
        elsewhere = [status for pid, status, _ in answers if pid != login_pid]
        assert at_login_worker == [(200, n) for n in range(1, len(at_login_worker) + 1)]
        assert len(elsewhere) >= WORKERS - 1 and set(elsewhere) == {401}


@pytest.mark.timeout(60)
def test_redis_sessions_survive_a_reload(redis_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    with running_server("examples.sessions.app:with_redis", workers=2) as server:
        cookie, _ = _login(server, "ada")
        assert [_me(server, cookie)[1]["visits"] for _ in range(2)] == [1, 2]
        old = set(server.worker_pids())
        server.reload()
        wait_until(lambda: (pids := set(server.worker_pids())) and not pids & old
                   and len(pids) == 2, timeout=20)
        status, answer = _me(server, cookie)
        assert status == 200 and answer["pid"] not in old and answer["visits"] == 3

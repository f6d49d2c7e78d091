"""Every dispatch mode serves; roundrobin spreads exactly; dead and draining workers get nothing."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from prefork.testing import http_request, running_server, wait_until

APP = "tests.apps.pidapp:app"
ENV_APP = "tests.apps.envapp:app"


def _count_pids(port: int, requests: int) -> Counter[int]:
    counts: Counter[int] = Counter()
    for _ in range(requests):
        status, _, body = http_request(port, "/")
        assert status == 200
        counts[int(body)] += 1
    return counts


@pytest.mark.timeout(90)
@pytest.mark.parametrize("dispatch", ["reuseport", "roundrobin", "shared"])
def test_every_worker_gets_a_share(dispatch: str) -> None:
    with running_server(APP, workers=4, dispatch=dispatch) as server:
        pids = set(server.worker_pids())
        assert len(pids) == 4
        counts = _count_pids(server.port, 400)
        print(f"{dispatch}: 400 connections over 4 workers -> {sorted(counts.values())}")
        assert set(counts) <= pids
        if dispatch == "roundrobin":
            assert set(counts) == pids
            assert all(99 <= n <= 101 for n in counts.values()), counts
        elif dispatch == "reuseport":
            # the kernel hashes each connection's 4-tuple: every listener gets some
            assert set(counts) == pids, counts
        else:
            assert len(counts) >= 2, counts


@pytest.mark.timeout(60)
def test_roundrobin_skips_dead_and_draining_workers() -> None:
    with running_server(APP, workers=3, dispatch="roundrobin", restart_backoff_base=5.0,
                        graceful_timeout=20) as server:
        by_slot = {w["slot"]: w["pid"] for w in server.stats()["workers"]}
        # One slow request per worker keeps the worker of slot 2 alive while it drains.
        with ThreadPoolExecutor(3) as pool:
            slow = [pool.submit(http_request, server.port, "/sleep?3")
                    for _ in range(3)]
            wait_until(lambda: sum(w["in_flight"] for w in server.stats()["workers"]) == 3,
                       timeout=10)
            os.kill(server.pid, signal.SIGTTOU)
            draining = by_slot[2]
            wait_until(lambda: any(w["pid"] == draining and w["state"] == "draining"
                                   for w in server.stats()["workers"]), timeout=5)
            victim = by_slot[0]
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in server.worker_pids(), timeout=10)
            counts = _count_pids(server.port, 60)
            # the killed worker's request fails; the draining worker finishes its own
            outcomes = [f.exception() is None and f.result()[0] for f in slow]
            assert sorted(map(str, outcomes)) == ["200", "200", "False"], outcomes
        assert victim not in counts and draining not in counts, counts
        assert sum(counts.values()) == 60


@pytest.mark.timeout(60)
def test_two_addresses_and_a_unix_socket(tmp_path) -> None:
    import socket as socketlib

    path = str(tmp_path / "prefork.sock")
    with running_server(APP, workers=2, bind=("127.0.0.1:0", f"unix:{path}")) as server:
        assert http_request(server.port, "/")[0] == 200
        with socketlib.socket(socketlib.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
    assert not os.path.exists(path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dispatch", ["reuseport", "roundrobin", "shared"])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_the_scope_names_the_address_the_connection_reached(dispatch: str, host: str) -> None:
    """A listener bound to one address gives it to its connections; a wildcard one, each
    connection's own local address."""
    with running_server(ENV_APP, workers=1, dispatch=dispatch, bind=f"{host}:0") as server:
        status, _, body = http_request(server.port, "/")
        assert status == 200
        assert json.loads(body)["server"] == ["127.0.0.1", server.port]

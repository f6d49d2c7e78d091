"""--statsd-host: gunicorn's metric names arrive on a real UDP socket in the test process."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from prefork.errors import BootError
from prefork.metrics.statsd import MAX_DATAGRAM, StatsdClient
from prefork.testing import http_request, running_server

APP = "tests.apps.metricsapp:app"


@pytest.fixture
def agent() -> Iterator[socket.socket]:
    """A UDP socket standing in for the StatsD agent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def receive_until(sock: socket.socket, done, timeout: float = 10.0) -> list[str]:
    """Lines received until ``done(lines)`` holds; TimeoutError past ``timeout``."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(lines):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not received in {timeout}s; got {lines!r}")
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        assert len(data) <= MAX_DATAGRAM
        lines.extend(data.decode().split("\n"))
    return lines


def test_gunicorn_names_with_prefix_and_tags(agent: socket.socket) -> None:
    port = agent.getsockname()[1]
    with running_server(APP, workers=2, statsd_host=f"127.0.0.1:{port}", statsd_prefix="shop",
                        dogstatsd_tags="env:test,team:web") as server:
        for path in ("/", "/", "/status?404"):
            http_request(server.port, path)
        tags = "|#env:test,team:web"

        def complete(lines: list[str]) -> bool:
            return (lines.count(f"shop.gunicorn.requests:1|c{tags}") >= 3
                    and f"shop.gunicorn.workers:2|g{tags}" in lines)

        lines = receive_until(agent, complete)
        assert lines.count(f"shop.gunicorn.request.status.200:1|c{tags}") == 2
        assert lines.count(f"shop.gunicorn.request.status.404:1|c{tags}") == 1
        durations = [line for line in lines if line.startswith("shop.gunicorn.request.duration:")]
        assert len(durations) == 3
        for line in durations:
            value, _, rest = line.partition(":")[2].partition("|")
            assert 0 <= float(value) < 5000
            assert rest == f"ms{tags}"
        # The arbiter's error log lines count too: a killed worker is logged as an error.
        os.kill(server.worker_pids()[0], signal.SIGKILL)
        receive_until(agent, lambda got: f"shop.gunicorn.log.error:1|c{tags}" in got)


def test_no_prefix_no_tags(agent: socket.socket) -> None:
    port = agent.getsockname()[1]
    with running_server(APP, workers=1, statsd_host=f"127.0.0.1:{port}") as server:
        http_request(server.port, "/")
        lines = receive_until(agent, lambda got: "gunicorn.requests:1|c" in got)
        assert "gunicorn.request.status.200:1|c" in lines


def test_client_batches_and_never_raises() -> None:
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent.bind(("127.0.0.1", 0))
    agent.settimeout(2)
    scheduled = []
    client = StatsdClient(f"127.0.0.1:{agent.getsockname()[1]}", prefix="p.",
                          schedule=lambda delay, callback: scheduled.append(callback))
    try:
        for status in range(200, 260):
            client.request(status, 0.0015)
        assert len(scheduled) >= 1  # a flush was armed for the batch still pending
        client.flush()
        datagrams = []
        with pytest.raises(TimeoutError):
            while True:
                datagrams.append(agent.recv(65536))
                agent.settimeout(0.2)
        lines = [line for data in datagrams for line in data.decode().split("\n")]
        assert len(datagrams) < 20  # 180 lines, batched
        assert all(len(data) <= MAX_DATAGRAM for data in datagrams)
        assert lines.count("p.gunicorn.requests:1|c") == 60
        assert "p.gunicorn.request.duration:1.500|ms" in lines
        assert "p.gunicorn.request.status.259:1|c" in lines
    finally:
        agent.close()
        client.close()
    # Nobody listens any more: ICMP "port unreachable" turns into errors, which are swallowed.
    client = StatsdClient("127.0.0.1:9")  # the discard port: nothing listens on loopback
    for _ in range(3):
        client.gauge("gunicorn.workers", 1)
    client.close()


def test_unresolvable_host_names_the_setting() -> None:
    with pytest.raises(BootError, match="statsd_host: cannot resolve"):
        StatsdClient("no-such-host.invalid:8125")

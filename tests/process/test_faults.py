"""Faults a production server meets: too many requests at once, slowloris and slow POST
clients, a worker killed under load, clients that vanish mid-request or mid-response.

Each test runs real arbiters and workers (``running_server``) and asserts on what went over the
wire and on the processes (pids, open fds); the figures measured are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prefork.testing import http_request, parse_response, running_server, wait_until

APP = "tests.apps.faultapp:app"
WSGI_APP = "tests.apps.faultapp:wsgi_app"


def _timed_request(port: int, path: str) -> tuple[int, float]:
    started = time.monotonic()
    status = http_request(port, path, timeout=10)[0]
    return status, time.monotonic() - started


class Prober:
    """A normal client in one thread: sequential requests, each on a fresh connection."""

    def __init__(self, port: int, path: str = "/", timeout: float = 5.0) -> None:
        self.port = port
        self.path = path
        self.timeout = timeout
        self.latencies: list[float] = []
        self.failures: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=15)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                status = http_request(self.port, self.path, timeout=self.timeout)[0]
            except OSError as exc:
                self.failures.append((started, repr(exc)))
                continue
            if status != 200:
                self.failures.append((started, f"status {status}"))
                continue
            self.latencies.append(time.monotonic() - started)


# -- --limit-concurrency ------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_limit_concurrency_answers_503_at_once(parser: str) -> None:
    with running_server(APP, workers=1, limit_concurrency=2, http=parser) as server:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(_timed_request, [server.port] * 6, ["/sleep?2"] * 6))
        print(f"{parser}: limit 2, 6 clients of a 2 s app -> "
              + ", ".join(f"{status} in {took:.3f}s" for status, took in sorted(results)))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 200, 503, 503, 503, 503], results
        assert all(took < 0.5 for status, took in results if status == 503), results
        assert all(took >= 2.0 for status, took in results if status == 200), results
        # the slots are free again once the slow requests are answered
        assert http_request(server.port, "/")[0] == 200


@pytest.mark.timeout(60)
def test_limit_concurrency_503_closes_the_connection() -> None:
    with running_server(APP, workers=1, limit_concurrency=1) as server, \
            ThreadPoolExecutor(1) as pool:
        slow = pool.submit(http_request, server.port, "/sleep?3")
        wait_until(lambda: sum(w["in_flight"] for w in server.stats()["workers"]) == 1,
                   timeout=10)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            # keep-alive asked for, and a second request pipelined: neither is honoured
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        status, headers, _ = parse_response(data)
        assert status == 503 and headers["connection"] == "close"
        assert data.count(b"HTTP/1.1") == 1
        assert slow.result()[0] == 200


# -- slowloris and slow POST -------------------------------------------------------------------


HEAD = b"GET / HTTP/1.1\r\nHost: slow.example\r\nUser-Agent: trickle\r\nAccept: */*\r\n\r\n"
POST_HEAD = b"POST /body HTTP/1.1\r\nHost: slow.example\r\nContent-Length: 100000\r\n\r\n"


class Trickler:
    """One slow client on a non-blocking socket: ``payload`` is sent ``step`` bytes at a time,
    one step per tick; what the server sends back is kept until it closes."""

    def __init__(self, port: int, first: bytes, payload: bytes) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.first = first
        self.payload = payload
        self.sent_at: float | None = None  # when the first byte went out
        self.closed_at: float | None = None
        self.received = b""

    def tick(self, now: float) -> None:
        if self.closed_at is not None:
            return
        chunk = self.first if self.sent_at is None else self.payload[:1]
        if self.sent_at is not None:
            self.payload = self.payload[1:]
        if not chunk:
            return
        try:
            self.sock.send(chunk)
        except BlockingIOError:
            return
        except OSError:  # the server closed on us between reads
            self.closed_at = now
            return
        if self.sent_at is None:
            self.sent_at = now

    def readable(self, now: float) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.received += data
        elif self.closed_at is None:
            self.closed_at = now


@pytest.mark.timeout(60)
def test_slowloris_and_slow_post_do_not_starve_normal_clients() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    timeout = 2.0
    with running_server(APP, workers=2, headers_timeout=timeout, body_timeout=timeout,
                        worker_connections=2000) as server:
        port = server.port
        # slowloris: a byte of the head every 0.5 s (the head takes 37 s at that pace)
        clients = [Trickler(port, HEAD[:1], HEAD[1:]) for _ in range(500)]
        # slow POST: the head and a first body byte, then a byte per 3 s (past body_timeout)
        clients += [Trickler(port, POST_HEAD + b"x", b"") for _ in range(50)]
        selector = selectors.DefaultSelector()
        try:
            for client in clients:
                selector.register(client.sock, selectors.EVENT_READ, client)
            with Prober(port) as prober:
                start = time.monotonic()
                next_tick = start
                while time.monotonic() - start < 4 * timeout + 4:
                    now = time.monotonic()
                    if now >= next_tick:
                        for client in clients:
                            client.tick(now)
                        next_tick = now + 0.5
                    for key, _ in selector.select(timeout=max(0.0, next_tick - now)):
                        client = key.data
                        client.readable(time.monotonic())
                        if client.closed_at is not None:
                            selector.unregister(client.sock)
                    if all(c.closed_at is not None for c in clients) and \
                            time.monotonic() - start > timeout + 1:
                        break
                time.sleep(0.5)  # a few more normal requests after the storm
        finally:
            selector.close()
            for client in clients:
                client.sock.close()
        assert all(c.sent_at is not None for c in clients)
        lifetimes = [c.closed_at - c.sent_at for c in clients
                     if c.closed_at is not None and c.sent_at is not None]
        statuses = [c.received.split(b" ", 2)[1] if c.received else b"-" for c in clients]
        answered_408 = statuses.count(b"408")
        latencies = sorted(prober.latencies)
        print(f"550 slow clients: {len(lifetimes)} closed by the server, lifetime "
              f"min {min(lifetimes):.2f}s max {max(lifetimes):.2f}s; {answered_408} got 408; "
              f"normal client: {len(latencies)} requests, {len(prober.failures)} failed, "
              f"latency median {latencies[len(latencies) // 2] * 1000:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms")
        assert len(lifetimes) == 550
        assert max(lifetimes) <= timeout + 2
        assert min(lifetimes) >= timeout - 0.1
        assert set(statuses) <= {b"408", b"-"}, set(statuses)
        assert not prober.failures, prober.failures[:5]
        assert len(latencies) >= 20
        assert latencies[-1] < 0.5


# -- a worker killed under load ----------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("dispatch", ["roundrobin", "reuseport"])
def test_sigkill_of_a_worker_under_load(dispatch: str) -> None:
    with running_server(APP, workers=2, dispatch=dispatch) as server:
        port = server.port
        slots = {w["slot"]: w["pid"] for w in server.stats()["workers"]}
        victim = slots[0]
        with Prober(port, timeout=5.0) as prober:
            wait_until(lambda: len(prober.latencies) >= 50, timeout=10)
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)

            def refilled() -> int | None:
                for w in server.stats()["workers"]:
                    if w["slot"] == 0 and w["pid"] != victim and w["state"] == "serving":
                        return int(w["pid"])
                return None

            replacement = wait_until(refilled, timeout=5, interval=0.01)
            refill = time.monotonic() - killed_at
            served_before = len(prober.latencies)
            wait_until(lambda: len(prober.latencies) >= served_before + 50, timeout=10)
        failures = prober.failures
        print(f"{dispatch}: slot refilled by pid {replacement} in {refill * 1000:.0f} ms; "
              f"{len(prober.latencies)} requests answered, {len(failures)} failed {failures}")
        assert refill < 1.0
        assert len(failures) <= 2, failures
        assert all(t >= killed_at - 0.1 for t, _ in failures), failures
        assert http_request(port, "/")[0] == 200


@pytest.mark.timeout(90)
def test_reuseport_connections_queued_on_a_dead_workers_listener_are_served() -> None:
    """The kernel queues connections on each worker's own listener; while that worker is stopped
    (hung) they wait there, and once it is killed the arbiter accepts and hands them over."""
    with running_server(APP, workers=2, dispatch="reuseport",
                        restart_backoff_base=2.0) as server:
        port = server.port
        victim = {w["slot"]: w["pid"] for w in server.stats()["workers"]}[0]
        os.kill(victim, signal.SIGSTOP)  # it accepts nothing more: its listener queues
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        try:
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in server.worker_pids(), timeout=5)
            answered = []
            for sock in socks:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            for sock in socks:
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                answered.append(parse_response(data))
        finally:
            for sock in socks:
                sock.close()
        pids = {int(body) if body.isdigit() else body for _, _, body in answered}
        print(f"20 connections queued across both listeners: "
              f"{sum(1 for status, _, _ in answered if status == 200)} answered 200")
        assert [status for status, _, _ in answered] == [200] * 20
        assert victim not in pids


# -- clients that vanish -----------------------------------------------------------------------


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _abort_mid_request(port: int, record: Path) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST /abort-request?{record} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 1000\r\n\r\n".encode() + b"y" * 10)
        time.sleep(0.01)  # let the app start waiting for the rest


def _abort_mid_response(port: int, record: Path) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /abort-response?{record} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_clients_that_vanish_are_seen_and_leave_no_fds(interface: str, tmp_path: Path) -> None:
    app, settings = (APP, {}) if interface == "asgi" else (WSGI_APP, {"threads": 2})
    with running_server(app, workers=1, **settings) as server:
        port = server.port
        pid = server.worker_pids()[0]
        assert http_request(port, "/")[0] == 200
        baseline = _fd_count(pid)
        requests, responses = tmp_path / "requests.log", tmp_path / "responses.log"
        for _ in range(50):
            _abort_mid_request(port, requests)
            _abort_mid_response(port, responses)
        if interface == "asgi":
            expected_requests = ["http.disconnect"] * 50
            expected_responses = ["http.disconnect"] * 50
        else:
            # the body read ends short (or raises), and close() follows: 2 lines a request
            expected_requests = ["close"] * 50
            expected_responses = ["close"] * 50

        def seen() -> bool:
            got_requests = [line for line in _lines(requests)
                            if interface == "asgi" or line == "close"]
            return len(got_requests) == 50 and len(_lines(responses)) == 50

        with contextlib.suppress(TimeoutError):
            wait_until(seen, timeout=15)
        request_lines, response_lines = _lines(requests), _lines(responses)
        if interface == "wsgi":
            reads = [line for line in request_lines if line != "close"]
            assert len(reads) == 50 and all(not line.startswith("read 1000") for line in reads)
            request_lines = [line for line in request_lines if line == "close"]
        assert request_lines == expected_requests, request_lines[:5]
        assert response_lines == expected_responses, response_lines[:5]
        settled = wait_until(lambda: abs(_fd_count(pid) - baseline) <= 2 and _fd_count(pid),
                             timeout=10)
        print(f"{interface}: 100 aborted requests recorded; worker fds baseline {baseline}, "
              f"after {settled}")
        assert http_request(port, "/")[0] == 200
        assert server.worker_pids() == [pid]

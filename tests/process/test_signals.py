"""gunicorn's signals on a real arbiter: TERM, INT, QUIT, HUP, TTIN, TTOU; PID 1; orphans."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from prefork.testing import http_request, is_alive, process_tree, running_server, wait_until

APP = "tests.apps.pidapp:app"


def _serving(server) -> list[int]:
    return [w["pid"] for w in server.stats()["workers"] if w["state"] == "serving"]


@pytest.mark.timeout(60)
def test_term_lets_in_flight_requests_finish_then_exits_zero() -> None:
    with running_server(APP, workers=2, graceful_timeout=10) as server:
        workers = server.worker_pids()
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(http_request, server.port, "/sleep?3")
            wait_until(lambda: sum(w["in_flight"] for w in server.stats()["workers"]) == 1,
                       timeout=5)
            started = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            status, _, body = slow.result(timeout=10)
        assert status == 200 and int(body) in workers
        assert server.stop(timeout=10) == 0
        assert time.monotonic() - started >= 1.0
        assert not any(is_alive(pid) for pid in workers)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_fast(signum: int) -> None:
    with running_server(APP, workers=2, graceful_timeout=30) as server:
        workers = server.worker_pids()
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(http_request, server.port, "/sleep?20")
            wait_until(lambda: sum(w["in_flight"] for w in server.stats()["workers"]) == 1,
                       timeout=5)
            started = time.monotonic()
            os.kill(server.pid, signum)
            assert server.stop(timeout=10) == 0
            assert time.monotonic() - started < 5
            with pytest.raises((ConnectionError, OSError)):
                slow.result(timeout=10)
        assert not any(is_alive(pid) for pid in workers)


def _hammer(port: int, stop: threading.Event, results: list) -> None:
    while not stop.is_set():
        try:
            results.append(http_request(port, "/", timeout=5)[0])
        except OSError as exc:
            results.append(repr(exc))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("dispatch", ["reuseport", "roundrobin", "shared"])
def test_hup_replaces_every_worker_without_a_failed_request(dispatch: str) -> None:
    with running_server(APP, workers=2, dispatch=dispatch) as server:
        old = set(server.worker_pids())
        stop, results = threading.Event(), []
        clients = [threading.Thread(target=_hammer, args=(server.port, stop, results))
                   for _ in range(2)]
        for client in clients:
            client.start()
        try:
            time.sleep(0.3)
            started = time.monotonic()
            os.kill(server.pid, signal.SIGHUP)
            wait_until(lambda: len(set(_serving(server))) == 2
                       and not set(server.worker_pids()) & old, timeout=20)
            took = time.monotonic() - started
            time.sleep(0.3)
        finally:
            stop.set()
            for client in clients:
                client.join(10)
        failures = [r for r in results if r != 200]
        assert not failures, failures[:5]
        assert len(results) > 50
        print(f"HUP ({dispatch}): all workers replaced in {took:.2f}s, "
              f"{len(results)} requests, 0 failed")


@pytest.mark.timeout(60)
def test_ttin_and_ttou_change_the_worker_count() -> None:
    with running_server(APP, workers=2) as server:
        os.kill(server.pid, signal.SIGTTIN)
        wait_until(lambda: len(_serving(server)) == 3, timeout=10)
        os.kill(server.pid, signal.SIGTTOU)
        # identical signals sent back to back coalesce in the kernel: wait for the first
        wait_until(lambda: server.stats()["target"] == 2, timeout=5)
        os.kill(server.pid, signal.SIGTTOU)
        wait_until(lambda: len(server.worker_pids()) == 1, timeout=10)
        assert server.stats()["target"] == 1
        assert http_request(server.port, "/")[0] == 200
        server.scale(3)
        wait_until(lambda: len(_serving(server)) == 3, timeout=10)


@pytest.mark.timeout(60)
def test_max_requests_recycles_without_a_failed_request() -> None:
    with running_server(APP, workers=2, max_requests=20, max_requests_jitter=5) as server:
        first = set(server.worker_pids())
        statuses = [http_request(server.port, "/")[0] for _ in range(150)]
        assert statuses == [200] * 150
        wait_until(lambda: not set(server.worker_pids()) & first, timeout=10)
        assert len(_serving(server)) == 2


@pytest.mark.timeout(60)
def test_workers_exit_when_the_arbiter_is_killed() -> None:
    with running_server(APP, workers=3) as server:
        workers = server.worker_pids()
        port = server.port
        os.kill(server.pid, signal.SIGKILL)
        started = time.monotonic()
        wait_until(lambda: not any(is_alive(pid) for pid in workers), timeout=10)
        print(f"orphaned workers exited {time.monotonic() - started:.2f}s after the arbiter died")
        with pytest.raises(OSError):
            http_request(port, "/", timeout=2)


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a PID namespace")
def test_runs_as_pid_1_and_reaps(tmp_path) -> None:
    script = (
        "import os, sys, threading, time\n"
        "import prefork\n"
        "assert os.getpid() == 1, os.getpid()\n"
        "sys.exit(prefork.serve('tests.apps.pidapp:app', bind=['127.0.0.1:0'], workers=2,"
        f" pidfile={str(tmp_path / 'pid')!r}))\n"
    )
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", sys.executable, "-c",
         script],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    reader: threading.Thread | None = None
    try:
        lines: list[bytes] = []

        def read_output() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        wait_until(lambda: sum(b"ready in" in line for line in lines) >= 2, timeout=20)
        port = int(next(line for line in lines if b"listening on" in line)
                   .split(b"127.0.0.1:")[1].split(b";")[0])
        assert http_request(port, "/")[0] == 200
        # crash a worker: PID 1 must reap it and refill the slot
        with contextlib.suppress(OSError):
            http_request(port, "/crash", timeout=5)
        wait_until(lambda: sum(b"ready in" in line for line in lines) >= 3, timeout=20)
        assert http_request(port, "/")[0] == 200
        arbiter = next(pid for pid in process_tree(proc.pid) if _parent(pid) == proc.pid)
        # an orphan of the app is re-parented to PID 1, the arbiter, which must reap it
        for _ in range(5):
            assert http_request(port, "/orphan")[0] == 200
        time.sleep(0.6)
        zombies = [pid for pid in _children_of(arbiter) if _state(pid) == "Z"]
        assert not zombies, zombies
        os.kill(arbiter, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if reader is not None:
            reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()


def _children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _parent(int(entry)) == parent:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return "gone"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])

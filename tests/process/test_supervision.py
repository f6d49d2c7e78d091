"""Crash restarts with backoff, the circuit breaker and the heartbeat, on real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from prefork.testing import http_request, is_alive, running_server, wait_until

APP = "tests.apps.pidapp:app"


def _crash(port: int) -> None:
    with contextlib.suppress(OSError):  # the worker dies mid-request: that is the point
        http_request(port, "/crash", timeout=5)


def _slot_pid(server, slot: int = 0) -> int | None:
    for worker in server.stats()["workers"]:
        if worker["slot"] == slot and worker["state"] == "serving":
            return worker["pid"]
    return None


@pytest.mark.timeout(60)
def test_crash_is_refilled_and_others_keep_serving() -> None:
    with running_server(APP, workers=2, dispatch="roundrobin") as server:
        before = set(server.worker_pids())
        _crash(server.port)
        # The surviving worker answers at once, while the slot is refilled.
        statuses = [http_request(server.port, "/")[0] for _ in range(10)]
        assert statuses == [200] * 10
        after = wait_until(lambda: len(set(server.worker_pids()) - before) == 1
                           and set(server.worker_pids()), timeout=10)
        assert len(after) == 2
        assert len(before & after) == 1


@pytest.mark.timeout(60)
def test_repeated_crashes_back_off_exponentially_then_reset() -> None:
    base = 0.4
    with running_server(APP, workers=1, restart_backoff_base=base, restart_backoff_cap=1.6,
                        restart_backoff_reset=3.0, breaker_threshold=50) as server:
        gaps = []
        for _ in range(5):
            pid = _slot_pid(server)
            assert pid
            crashed_at = time.monotonic()
            _crash(server.port)
            new_pid = wait_until(lambda old=pid: (p := _slot_pid(server)) and p != old and p,
                                 timeout=10, interval=0.01)
            assert new_pid != pid
            gaps.append(time.monotonic() - crashed_at)
        print("crash -> next worker serving, seconds:", [round(g, 2) for g in gaps])
        # first refill at once, then base, 2*base, 4*base, capped at 4*base
        expected = [0.0, base, 2 * base, 4 * base, 4 * base]
        for gap, want in zip(gaps, expected, strict=False):
            assert want <= gap < want + 0.9, (gaps, expected)
        # A worker that lived past --restart-backoff-reset resets the backoff.
        time.sleep(3.2)
        before = _slot_pid(server)
        started = time.monotonic()
        _crash(server.port)
        wait_until(lambda: (p := _slot_pid(server)) and p != before, timeout=10, interval=0.01)
        assert time.monotonic() - started < 0.9
        assert server.stats()["restarts"]["0"] == 6, server.stats()


@pytest.mark.timeout(180)
def test_requests_that_kill_their_worker_never_stop_the_server() -> None:
    """The breaker is for boot loops: 30 requests that each kill the only worker (six were
    enough to open it and end the server with status 3) are 30 crashes replaced with backoff."""
    with running_server(APP, workers=1, restart_backoff_base=0.05, restart_backoff_cap=0.2,
                        breaker_threshold=5, breaker_window=60) as server:
        for _ in range(30):
            pid = wait_until(lambda: _slot_pid(server), timeout=10)
            _crash(server.port)
            new_pid = wait_until(lambda old=pid: (p := _slot_pid(server)) and p != old and p,
                                 timeout=10)
            status, _, body = http_request(server.port, "/")
            assert (status, int(body)) == (200, new_pid)
        stats = server.stats()
        assert stats["breaker"] == "closed" and stats["restarts"]["0"] == 30, stats
        assert is_alive(server.pid)


def _max_processes(process, seconds: float) -> int:
    most = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.proc.poll() is None:
        most = max(most, 1 + len(process.descendants()))
        time.sleep(0.005)
    return most


@pytest.mark.timeout(60)
@pytest.mark.parametrize("app, expected", [
    ("tests.apps.import_error:app", "invalid literal for int()"),
    ("tests.apps.lifespan_fail:app", "database unreachable at db:5432"),
])
def test_breaker_stops_a_boot_loop_and_exits(cli, app: str, expected: str) -> None:
    process = cli(app, "--bind", "127.0.0.1:0", "--workers", "2", "--breaker-threshold", "4",
                  "--breaker-window", "30", "--restart-backoff-base", "0.1", "--lifespan", "on")
    most = _max_processes(process, 20)
    code = process.proc.wait(timeout=20)
    output = process.output()
    assert code != 0
    assert most <= 3, f"{most} processes at once"
    assert output.count("died after") == 4, output  # exactly --breaker-threshold forks
    assert expected in output
    last = output.strip().splitlines()[-2:]
    assert any("circuit breaker open" in line and expected in line for line in last), last


@pytest.mark.timeout(90)
def test_breaker_with_live_workers_stays_up_and_retries(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    os.environ["PREFORK_TEST_FAIL_FLAG"] = str(flag)
    try:
        with running_server("tests.apps.flaky_boot:app", workers=2, lifespan="on",
                            breaker_threshold=3, breaker_window=30, breaker_cooldown=2.0,
                            restart_backoff_base=0.05) as server:
            survivor, victim = server.worker_pids()
            flag.write_text("fail")
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: server.stats()["breaker"] == "open", timeout=15)
            assert http_request(server.port, "/")[0] == 200
            assert is_alive(server.pid)
            flag.unlink()
            # after the cool-down one trial worker starts, succeeds, and closes the breaker
            wait_until(lambda: server.stats()["breaker"] == "closed"
                       and len([w for w in server.stats()["workers"]
                                if w["state"] == "serving"]) == 2, timeout=20)
            assert survivor in server.worker_pids()
    finally:
        del os.environ["PREFORK_TEST_FAIL_FLAG"]


@pytest.mark.timeout(60)
def test_heartbeat_kills_a_blocked_worker(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    with running_server(APP, workers=1, timeout=1.0, errorlog=str(log)) as server:
        pid = server.worker_pids()[0]
        with contextlib.suppress(OSError):
            http_request(server.port, "/block?30", timeout=15)
        wait_until(lambda: not is_alive(pid), timeout=10)
        new = wait_until(lambda: (p := _slot_pid(server)) and p != pid and p, timeout=10)
        assert http_request(server.port, "/")[1:] and int(http_request(server.port, "/")[2]) == new
    text = log.read_text()
    assert f"worker {pid} (slot 0) timed out: no heartbeat" in text
    assert "aborted on SIGABRT" in text or "killed by SIGKILL" in text

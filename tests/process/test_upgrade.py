"""USR2 binary upgrade: a new arbiter inherits the listeners; TERM to the old loses nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from prefork.testing import http_request, is_alive, wait_until


def _hammer(port: int, stop: threading.Event, results: list) -> None:
    while not stop.is_set():
        try:
            results.append(int(http_request(port, "/", timeout=5)[2]))
        except OSError as exc:
            results.append(repr(exc))


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _port_from(log: str) -> int:
    line = next(line for line in log.splitlines() if "listening on" in line)
    return int(line.split("127.0.0.1:")[1].split(";")[0])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("dispatch", ["reuseport", "roundrobin"])
def test_usr2_then_term_loses_no_request(cli, tmp_path: Path, dispatch: str) -> None:
    pidfile = tmp_path / "prefork.pid"
    process = cli("tests.apps.pidapp:app", "--bind", "127.0.0.1:0", "--workers", "2",
                  "--dispatch", dispatch, "--pid", str(pidfile))
    wait_until(lambda: process.output().count("ready in") >= 2, timeout=20)
    port = _port_from(process.output())
    old_arbiter = process.pid
    old_workers = set(process.descendants())
    stop, results = threading.Event(), []
    client = threading.Thread(target=_hammer, args=(port, stop, results))
    client.start()
    try:
        time.sleep(0.3)
        os.kill(old_arbiter, signal.SIGUSR2)
        new_arbiter = wait_until(lambda: _pid_in(pidfile) not in (None, old_arbiter)
                                 and _pid_in(pidfile), timeout=20)
        assert int((tmp_path / "prefork.pid.oldbin").read_text()) == old_arbiter
        wait_until(lambda: process.output().count("ready in") >= 4, timeout=20)
        os.kill(old_arbiter, signal.SIGTERM)
        wait_until(lambda: process.proc.poll() is not None, timeout=20)
        assert process.proc.returncode == 0
        time.sleep(0.5)
    finally:
        stop.set()
        client.join(10)
    failures = [r for r in results if not isinstance(r, int)]
    assert not failures, failures[:5]
    assert is_alive(new_arbiter)
    served_late = set(results[-20:])
    assert served_late and not served_late & old_workers
    assert http_request(port, "/")[0] == 200
    print(f"USR2 ({dispatch}): {len(results)} requests across the upgrade, 0 failed")
    os.kill(new_arbiter, signal.SIGTERM)
    wait_until(lambda: not is_alive(new_arbiter), timeout=20)
    assert not pidfile.exists()

"""TERM and INT sent to the whole process group, as systemd's default KillMode, a shell-wrapped
``docker stop`` and a terminal's Ctrl-C do: the workers get the signal at the same moment as the
arbiter. The stop must be quiet (no crash logged, nothing forked) and exit 0, every time."""

from __future__ import annotations

import os
import signal
import time

import pytest

from prefork.testing import http_request, wait_until

APP = "tests.apps.pidapp:app"
RUNS = 20
WORKERS = 2
GRACEFUL_TIMEOUT = 20.0


def _port_from(log: str) -> int:
    line = next(line for line in log.splitlines() if "listening on" in line)
    return int(line.split("127.0.0.1:")[1].split(";")[0])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_to_the_process_group_stops_quietly_every_time(cli, signum: int) -> None:
    slowest = 0.0
    for run in range(RUNS):
        process = cli(APP, "--bind", "127.0.0.1:0", "--workers", str(WORKERS),
                      "--no-control-socket", "--log-level", "debug",
                      "--graceful-timeout", str(GRACEFUL_TIMEOUT))
        wait_until(lambda p=process: p.output().count("ready in") >= WORKERS
                   or p.proc.poll() is not None, timeout=30)
        assert http_request(_port_from(process.output()), "/")[0] == 200
        started = time.monotonic()
        os.killpg(process.pid, signum)  # the CLI runs in its own session: pgid == pid
        code = process.proc.wait(timeout=GRACEFUL_TIMEOUT + 10)
        took = time.monotonic() - started
        slowest = max(slowest, took)
        output = process.output()
        after = output[output.index("shutdown of"):] if "shutdown of" in output else output
        assert code == 0, (run, output)
        assert "[ERROR]" not in output and "[CRITICAL]" not in output, (run, output)
        assert output.count("Booting worker with pid") == WORKERS, (run, output)
        assert "Booting worker with pid" not in after, (run, output)
        assert took < GRACEFUL_TIMEOUT / 2, (run, took, output)
        process.stop()
    print(f"{RUNS} group {signal.Signals(signum).name} stops, slowest {slowest:.2f}s")

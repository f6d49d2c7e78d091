"""A reload whose new code cannot boot: reported as failed, the old workers keep serving, and
the next reload after the fix rolls the new code out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from prefork.testing import http_request, wait_until
from tests.process.conftest import ROOT

WORKERS = 2

APP_SOURCE = '''
VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    body = VERSION.encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})
'''

BROKEN_SOURCE = 'raise ImportError("the deploy is missing a dependency")\n'


def _ctl(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "prefork", "ctl", "--control-socket",
                           str(path), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def _status(path: Path) -> dict[str, Any]:
    result = _ctl(path, "status", "--json")
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def _port_from(log: str) -> int:
    line = next(line for line in log.splitlines() if "listening on" in line)
    return int(line.split("127.0.0.1:")[1].split(";")[0])


def _hammer(port: int, stop: threading.Event, results: list[str]) -> None:
    while not stop.is_set():
        try:
            results.append(http_request(port, "/", timeout=5)[2].decode())
        except OSError as exc:
            results.append(repr(exc))


@pytest.mark.timeout(180)
def test_a_failed_reload_keeps_the_old_code_and_the_next_one_rolls_out(
        cli, tmp_path: Path) -> None:
    module = tmp_path / "deployed_app.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    control = tmp_path / "ctl.sock"
    process = cli("deployed_app:app", "--bind", "127.0.0.1:0", "--workers", str(WORKERS),
                  "--control-socket", str(control), "--breaker-threshold", "3",
                  env={"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"})
    wait_until(lambda: process.output().count("ready in") >= WORKERS, timeout=30)
    port = _port_from(process.output())
    stop, results = threading.Event(), []
    client = threading.Thread(target=_hammer, args=(port, stop, results))
    client.start()
    try:
        # two failed reloads in a row (HUP, then prefork ctl reload --wait): each is reported,
        # each tries every worker again
        for attempt in range(2):
            module.write_text(BROKEN_SOURCE)
            if attempt == 0:
                os.kill(process.pid, signal.SIGHUP)
            else:
                waited = _ctl(control, "reload", "--wait", "--wait-timeout", "30")
                assert waited.returncode != 0, waited
                assert "reload failed, the old workers keep serving" in waited.stderr
                assert "the deploy is missing a dependency" in waited.stderr
            failed = wait_until(lambda: (s := _status(control))["reload"]["state"] == "failed"
                                and s, timeout=30)
            assert "the deploy is missing a dependency" in failed["reload"]["reason"], failed
            assert process.output().count("reload failed") == attempt + 1
            assert process.output().count(f"reloading: replacing {WORKERS} workers") \
                == attempt + 1
            wait_until(lambda: len([w for w in _status(control)["workers"]
                                    if w["state"] == "serving"
                                    and not w["retiring"]]) == WORKERS, timeout=15)
            assert failed["breaker"] == "closed"
            text = _ctl(control, "status").stdout
            assert "last reload FAILED" in text, text
            served = len(results)
            wait_until(lambda n=served: len(results) > n + 20, timeout=15)
            assert results[-1] == "v1"
        module.write_text(APP_SOURCE.format(version="v3"))
        reloaded_at = time.monotonic()
        os.kill(process.pid, signal.SIGHUP)
        wait_until(lambda: results and results[-1] == "v3", timeout=30)
        rolled_out = time.monotonic() - reloaded_at
        wait_until(lambda: _status(control)["reload"]["state"] == "done", timeout=30)
        served = len(results)
        wait_until(lambda: len(results) > served + 50, timeout=15)
    finally:
        stop.set()
        client.join(10)
    failures = [r for r in results if r not in ("v1", "v3")]
    print(f"{len(results)} requests over two failed reloads and a good one, "
          f"{len(failures)} failed; v3 served {rolled_out:.2f}s after its HUP")
    assert failures == []
    assert set(results[-50:]) == {"v3"}
    assert rolled_out < 10
    assert "[CRITICAL] circuit breaker" not in process.output()

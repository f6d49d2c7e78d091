"""Bad start-up input: one clear line naming the problem, a non-zero exit, and no fork."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prefork", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=30)


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


CASES = [
    (["tests.apps.pidapp:app", "--wrkers", "2"], "--wrkers"),
    (["tests.apps.pidapp:app", "--bind", "127.0.0.1:99999"], "out of range"),
    (["tests.apps.pidapp:app", "--bind", "256.1.1.1:80"], "bind"),
    (["tests.apps.pidapp:app", "--workers", "0"], "workers"),
    (["tests.apps.pidapp:app", "--timeout", "soon"], "timeout"),
    (["tests.apps.no_such_module:app"], "no_such_module"),
    (["tests.apps.pidapp:nothing_here"], "nothing_here"),
    (["tests.apps.not_callable:app"], "not callable"),
    (["tests.apps.pidapp:app", "--dispatch", "carrier-pigeon"], "dispatch"),
    ([], "APP"),
    (["tests.apps.pidapp:app", "--reload", "--preload"], "preload"),
    (["tests.apps.pidapp:app", "--reload", "--reload-dir", "no/such/dir"], "reload_dirs"),
    (["tests.apps.pidapp:app", "--reload", "--reload-extra-file", "no-such.html"],
     "reload_extra_files"),
    (["tests.apps.pidapp:app", "--reload", "--reload-engine", "fsevents"], "reload-engine"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, named", CASES, ids=[c[1] for c in CASES])
def test_bad_input_is_one_line_and_no_fork(args: list[str], named: str) -> None:
    result = _run(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("prefork: error:"), lines
    assert named in lines[0], lines
    assert "Traceback" not in result.stderr
    assert "Booting worker with pid" not in result.stderr and "ready in" not in result.stderr


@pytest.mark.timeout(60)
def test_port_in_use(busy_port: int) -> None:
    result = _run("tests.apps.pidapp:app", "--bind", f"127.0.0.1:{busy_port}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"prefork: error: bind: cannot listen on 127.0.0.1:{busy_port}: Address already in use")
    assert "(slot" not in result.stderr


def test_help_and_version() -> None:
    assert "--dispatch" in _run("--help").stdout
    version = _run("--version")
    assert version.returncode == 0 and "prefork" in version.stdout

"""What a gunicorn user sees at start-up: gunicorn's lines (which scripts wait for), the process
titles ``ps`` shows, and an app that fails on import told once, with its file and line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prefork import __version__
from prefork.testing import http_request, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.pidapp:app"
BROKEN = "tests.apps.import_error:app"
WHERE = "at tests/apps/import_error.py:5"  # the app's line that raised
# gunicorn's own start-up lines (arbiter.py), as scripts match them
LISTENING = re.compile(r"\[INFO\] Listening at: (\S+) \((\d+)\)$", re.MULTILINE)
BOOTING = re.compile(r"\[INFO\] Booting worker with pid: (\d+)\b", re.MULTILINE)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prefork", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60)


@pytest.mark.timeout(60)
def test_gunicorns_start_up_lines(cli, tmp_path: Path) -> None:
    unix = tmp_path / "app.sock"
    process = cli(APP, "--bind", "127.0.0.1:0", "--bind", f"unix:{unix}", "-w", "2",
                  "--no-control-socket")
    wait_until(lambda: process.output().count("ready in") == 2, timeout=20)
    lines = process.output().splitlines()
    assert re.search(rf"\[INFO\] Starting prefork {re.escape(__version__)} "
                     r"\((pure Python|compiled)\)$", lines[0])
    listening = LISTENING.findall(process.output())
    assert [pid for _, pid in listening] == [str(process.pid)] * 2
    tcp, path = (url for url, _ in listening)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", tcp) and path == f"unix:{unix}"
    assert http_request(int(tcp.rsplit(":", 1)[1]), "/")[0] == 200
    booted = {int(pid) for pid in BOOTING.findall(process.output())}
    assert booted == set(process.descendants())
    assert "2 workers;" in process.output()


@pytest.mark.timeout(60)
def test_one_worker_is_singular(cli) -> None:
    process = cli(APP, "--bind", "127.0.0.1:0", "-w", "1", "--no-control-socket")
    wait_until(lambda: "ready in" in process.output(), timeout=20)
    assert "; 1 worker;" in process.output() and "1 workers" not in process.output()


@pytest.mark.timeout(60)
def test_ps_shows_the_titles(cli) -> None:
    pytest.importorskip("setproctitle")
    process = cli(APP, "--bind", "127.0.0.1:0", "-w", "2", "--no-control-socket")
    wait_until(lambda: process.output().count("ready in") == 2, timeout=20)
    workers = process.descendants()

    def title(pid: int) -> str:
        return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                              text=True, check=True).stdout.strip()

    assert title(process.pid) == f"prefork: arbiter [{APP}]"
    assert [title(pid) for pid in workers] == [f"prefork: worker [{APP}]"] * 2


@pytest.mark.timeout(60)
def test_ps_shows_proc_name(cli) -> None:
    pytest.importorskip("setproctitle")
    process = cli(APP, "--bind", "127.0.0.1:0", "-w", "1", "-n", "shop", "--no-control-socket")
    wait_until(lambda: "ready in" in process.output(), timeout=20)
    args = subprocess.run(["ps", "-o", "args=", "-p", str(process.pid)], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert args == "prefork: arbiter [shop]"


@pytest.mark.timeout(90)
def test_an_app_failing_on_import_is_told_once_with_its_file_and_line() -> None:
    result = _run(BROKEN, "--bind", "127.0.0.1:0", "-w", "1", "--no-control-socket",
                  "--restart-backoff-base", "0.05")
    assert result.returncode == 3
    log = result.stderr
    assert log.count("Traceback (most recent call last)") == 1
    assert "direct cause" not in log and "importlib" not in log and "AppLoadError" not in log
    assert 'tests/apps/import_error.py", line 5, in <module>' in log
    died = [line for line in log.splitlines() if "died after" in line]
    assert len(died) >= 2
    assert WHERE in died[0]
    assert all(line.endswith("application failed to load: same error as before)")
               for line in died[1:])
    breaker = next(line for line in log.splitlines() if "circuit breaker open" in line)
    assert breaker.endswith(WHERE)
    assert log.strip().splitlines()[-1].endswith(WHERE)


@pytest.mark.timeout(60)
def test_an_app_failing_on_import_with_preload() -> None:
    result = _run(BROKEN, "--bind", "127.0.0.1:0", "-w", "1", "--no-control-socket",
                  "--preload")
    assert result.returncode == 1
    assert result.stderr.count("Traceback (most recent call last)") == 1
    assert "direct cause" not in result.stderr and "importlib" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("prefork: error: error while importing 'tests.apps.import_error': "
                           "ValueError: invalid literal for int()")
    assert last.endswith(WHERE)


def _gunicorn_start_up(tmp_path: Path) -> str:
    """gunicorn's own error log up to its worker's boot, for the same app and bind."""
    pytest.importorskip("gunicorn")
    errors = tmp_path / "gunicorn-error.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.apps.wsgiapp:app", "-b", "127.0.0.1:0",
         "-w", "1", "--error-logfile", str(errors)], cwd=ROOT, start_new_session=True)
    try:
        return wait_until(lambda: errors.exists() and "Booting worker" in errors.read_text()
                          and errors.read_text(), timeout=20)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# what scripts written for gunicorn match, each as a whole line
SCRIPTED = [
    re.compile(r"^\[[^]]+\] \[(\d+)\] \[INFO\] Starting (?:gunicorn|prefork) \S+"),
    re.compile(r"^\[[^]]+\] \[(\d+)\] \[INFO\] Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)$"),
    re.compile(r"^\[[^]]+\] \[(\d+)\] \[INFO\] Booting worker with pid: (\d+)\b"),
]


@pytest.mark.timeout(60)
def test_the_lines_scripts_match_in_gunicorns_log_match_in_preforks(cli, tmp_path: Path) -> None:
    theirs = _gunicorn_start_up(tmp_path).splitlines()
    process = cli("tests.apps.wsgiapp:app", "-b", "127.0.0.1:0", "-w", "1",
                  "--no-control-socket")
    wait_until(lambda: "ready in" in process.output(), timeout=20)
    ours = process.output().splitlines()
    for pattern in SCRIPTED:
        assert any(pattern.search(line) for line in theirs), pattern.pattern  # the oracle
        assert any(pattern.search(line) for line in ours), pattern.pattern
    listening = next(m for m in map(SCRIPTED[1].search, ours) if m)
    assert int(listening.group(3)) == process.pid
    assert http_request(int(listening.group(2)), "/")[0] == 201

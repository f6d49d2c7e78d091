"""--reload: an edit to a watched file replaces the workers while the arbiter and its listener
stay; an edit that does not import keeps the old workers and is reported once; the fix rolls
out; extra files reload, excluded ones do not; the watcher leaves with the arbiter."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from prefork.testing import http_request, wait_until

APP_SOURCE = '''
from pathlib import Path

VERSION = {version!r}
EXTRA = Path(__file__).with_name("settings.toml")
SETTING = EXTRA.read_bytes().strip() if EXTRA.exists() else b""  # read once, at import


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    body = VERSION.encode()
    if SETTING:
        body += b" " + SETTING
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})
'''

BROKEN_SOURCE = 'VERSION = "v2\n'  # line 1: an unterminated string


def _port_from(log: str) -> int:
    line = next(line for line in log.splitlines() if "listening on" in line)
    return int(line.split("127.0.0.1:")[1].split(";")[0])


def _answer(port: int) -> str:
    return http_request(port, "/", timeout=5)[2].decode()


def _hammer(port: int, stop: threading.Event, results: list[str]) -> None:
    while not stop.is_set():
        try:
            results.append(_answer(port))
        except OSError as exc:
            results.append(repr(exc))


def _log_records(output: str, text: str) -> list[str]:
    """The log records (not the traceback lines under them) that contain ``text``."""
    return [line for line in output.splitlines() if line.startswith("[") and text in line]


def _start(cli, tmp_path: Path, *args: str):
    process = cli("watched_app:app", "--bind", "127.0.0.1:0", "--workers", "2", "--reload",
                  "--no-control-socket", *args, cwd=tmp_path,
                  env={"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"})
    wait_until(lambda: process.output().count("ready in") >= 2
               and "reload: watching" in process.output(), timeout=30)
    return process, _port_from(process.output())


@pytest.mark.timeout(120)
def test_an_edit_rolls_out_and_a_broken_one_keeps_the_old_workers(cli, tmp_path: Path) -> None:
    module = tmp_path / "watched_app.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    process, port = _start(cli, tmp_path)
    arbiter_line = _log_records(process.output(), "listening on")
    assert _answer(port) == "v1"
    watcher_pids = set(process.descendants())  # two workers and the watcher
    assert len(watcher_pids) == 3, watcher_pids
    stop, results = threading.Event(), []
    client = threading.Thread(target=_hammer, args=(port, stop, results))
    client.start()
    try:
        saved_at = time.monotonic()
        module.write_text(APP_SOURCE.format(version="v2"))
        wait_until(lambda: results and results[-1] == "v2", timeout=20)
        rolled_out = time.monotonic() - saved_at
        wait_until(lambda: results[-20:] == ["v2"] * 20, timeout=20)  # every slot replaced

        module.write_text(BROKEN_SOURCE)
        wait_until(lambda: "reload failed" in process.output(), timeout=20)
        served = len(results)
        wait_until(lambda: len(results) > served + 20, timeout=15)
        assert set(results[served:]) == {"v2"}

        module.write_text(APP_SOURCE.format(version="v3"))
        wait_until(lambda: results[-20:] == ["v3"] * 20, timeout=20)
    finally:
        stop.set()
        client.join(10)
    output = process.output()
    print(f"{len(results)} requests; v2 served {rolled_out:.2f}s after the save")
    assert [r for r in results if r not in ("v1", "v2", "v3")] == []
    # the same arbiter on the same port throughout
    assert _log_records(output, "listening on") == arbiter_line
    assert os.waitpid(process.pid, os.WNOHANG) == (0, 0)
    assert output.count("reloading: replacing 2 workers") == 3
    # the syntax error: one record naming the file and line, its traceback once
    errors = _log_records(output, "unterminated string literal")
    assert len(errors) == 1, errors
    assert "reload failed" in errors[0] and "watched_app.py:1" in errors[0], errors
    assert output.count("SyntaxError: unterminated string literal") == 2  # record, traceback
    assert "circuit breaker" not in output and "will be refilled" not in output
    assert rolled_out < 10

    watcher_pids.update(process.descendants())
    os.kill(process.pid, signal.SIGTERM)
    assert process.proc.wait(timeout=30) == 0
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in watcher_pids),
               timeout=10)
    assert "Traceback" not in process.output()


@pytest.mark.timeout(90)
def test_extra_files_reload_and_excluded_files_do_not(cli, tmp_path: Path) -> None:
    (tmp_path / "watched_app.py").write_text(APP_SOURCE.format(version="v1"))
    extra = tmp_path / "settings.toml"
    extra.write_text("first")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "notes.py").write_text("")
    (tmp_path / "draft_one.py").write_text("")
    process, port = _start(cli, tmp_path, "--reload-extra-file", "settings.toml",
                           "--reload-exclude", "draft_*.py", "--reload-exclude", "scratch")
    assert _answer(port) == "v1 first"
    (scratch / "notes.py").write_text("changed = True\n")
    (tmp_path / "draft_one.py").write_text("changed = True\n")
    (tmp_path / "readme.txt").write_text("not a watched name\n")
    extra.write_text("second")
    wait_until(lambda: _answer(port) == "v1 second", timeout=20)
    changes = _log_records(process.output(), "reload: ")
    changed = [line.split("reload: ", 1)[1] for line in changes if "changed" in line]
    assert changed == ["settings.toml changed"], changes

    # an editor's save, a formatter's run: a burst of writes is one reload
    wait_until(lambda: process.output().count("ready in") >= 4, timeout=20)  # first reload done
    for name in ("helper_a.py", "helper_b.py"):
        (tmp_path / name).write_text("VALUE = 1\n")
    (tmp_path / "watched_app.py").write_text(APP_SOURCE.format(version="v2"))
    wait_until(lambda: _answer(port) == "v2 second", timeout=20)
    changes = [line.split("reload: ", 1)[1] for line in _log_records(process.output(), "reload: ")
               if "changed" in line]
    assert changes[1:] == ["helper_a.py, helper_b.py, watched_app.py changed"], changes
    assert process.output().count("reloading: replacing") == 2


@pytest.mark.timeout(60)
def test_the_watcher_stays_out_of_the_workers_and_its_death_is_reported(
        cli, tmp_path: Path) -> None:
    (tmp_path / "watched_app.py").write_text(APP_SOURCE.format(version="v1"))
    process, port = _start(cli, tmp_path)
    workers = {int(line.split("pid: ")[1].split(" ")[0])
               for line in _log_records(process.output(), "Booting worker with pid")}
    watcher = next(pid for pid in process.descendants() if pid not in workers)
    # the workers were forked after the watcher started: none holds its pipe
    pipe = os.readlink(f"/proc/{watcher}/fd/1")
    assert pipe.startswith("pipe:"), pipe
    for worker in workers:
        held = {os.readlink(f"/proc/{worker}/fd/{fd}") for fd in os.listdir(f"/proc/{worker}/fd")}
        assert pipe not in held, worker
    os.kill(watcher, signal.SIGKILL)
    wait_until(lambda: "the file watcher exited (killed by SIGKILL)" in process.output(),
               timeout=10)
    assert _answer(port) == "v1"
    assert process.output().count("Booting worker with pid") == 2


@pytest.mark.timeout(60)
def test_the_python_api_reloads_an_import_string(tmp_path: Path) -> None:
    from prefork import Server

    module = tmp_path / "embedded_app.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    with Server("embedded_app:app", bind="127.0.0.1:0", workers=1, reload=True,
                chdir=str(tmp_path), control_socket_disable=True) as server:
        assert _answer(server.port) == "v1"
        arbiter = server.pid

        def rolled_out() -> bool:
            # written again until seen: the watcher may still be starting at the first write
            module.write_text(APP_SOURCE.format(version="v2"))
            try:
                return bool(wait_until(lambda: _answer(server.port) == "v2", timeout=1.0,
                                       interval=0.05))
            except TimeoutError:
                return False

        wait_until(rolled_out, timeout=30, interval=0)
        assert server.pid == arbiter

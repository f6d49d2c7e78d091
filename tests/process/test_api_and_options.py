"""The Python API and the start-up options: factories, chdir, preload, pidfile, bind forms."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import prefork
from prefork.testing import http_request, running_server, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("app, settings", [
    ("tests.apps.factory:create_app()", {}),
    ("tests.apps.factory:create_app('bonjour')", {}),
    ("tests.apps.factory:create_app", {"factory": True}),
])
def test_factories(app: str, settings: dict) -> None:
    with running_server(app, workers=1, **settings) as server:
        status, _, body = http_request(server.port, "/")
        greeting, imported_in, served_by = body.decode().split()
        assert status == 200
        assert greeting == ("bonjour" if "bonjour" in app else "hello")
        # without --preload the app is imported in the worker, never in the arbiter
        assert int(imported_in) == int(served_by) != server.pid


@pytest.mark.timeout(60)
def test_preload_imports_in_the_arbiter() -> None:
    with running_server("tests.apps.factory:create_app()", workers=2, preload_app=True) as server:
        _, _, body = http_request(server.port, "/")
        _, imported_in, served_by = body.decode().split()
        assert int(imported_in) == server.pid != int(served_by)


@pytest.mark.timeout(60)
def test_app_object_and_chdir(tmp_path: Path) -> None:
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body"})

    with running_server(app, workers=1) as server:
        assert http_request(server.port, "/")[0] == 204

    (tmp_path / "elsewhere.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': b'from chdir'})\n")
    cwd = os.getcwd()
    try:
        with running_server("elsewhere:app", workers=1, chdir=str(tmp_path)) as server:
            assert http_request(server.port, "/")[2] == b"from chdir"
    finally:
        os.chdir(cwd)


@pytest.mark.timeout(60)
def test_pidfile_written_and_removed(tmp_path: Path) -> None:
    pidfile = tmp_path / "prefork.pid"
    with running_server("tests.apps.pidapp:app", workers=1, pidfile=str(pidfile)) as server:
        assert int(pidfile.read_text()) == server.pid
    assert not pidfile.exists()


@pytest.mark.timeout(60)
@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_bind() -> None:
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("::1 is not configured")
    with running_server("tests.apps.pidapp:app", workers=2, bind="[::1]:0") as server:
        status, _, _ = http_request(server.port, "/", host="::1")
        assert status == 200


def _serve_on_inherited_socket(command: Callable[[int], list[str]],
                               check: Callable[[], None] = lambda: None) -> None:
    """Start ``command(fd)`` with a listening socket passed as ``fd``; a request must be
    answered on that socket's port, ``check`` must pass, and TERM must stop it with status 0."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen(command(fd), cwd=ROOT, pass_fds=[fd], start_new_session=True)
    listener.close()
    try:
        assert wait_until(lambda: _try_get(port), timeout=20) == 200
        check()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(60)
def test_inherited_fd_bind(tmp_path: Path) -> None:
    _serve_on_inherited_socket(lambda fd: [
        sys.executable, "-m", "prefork", "tests.apps.pidapp:app", "--fd", str(fd),
        "--workers", "2", "--error-logfile", str(tmp_path / "log")])


def _try_get(port: int) -> int | None:
    try:
        return http_request(port, "/", timeout=2)[0]
    except OSError:
        return None


@pytest.mark.timeout(60)
def test_serve_blocks_until_signalled(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setpgid(0, 0)
            code = prefork.serve("tests.apps.pidapp:app", bind=["127.0.0.1:0"], workers=1,
                                 pidfile=str(pidfile), errorlog=str(tmp_path / "log"))
        finally:
            os._exit(code)
    try:
        wait_until(lambda: "ready in" in _read(tmp_path / "log"), timeout=20)
        assert int(pidfile.read_text()) == pid
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(prefork.ConfigError, match="workers"):
        prefork.Server("tests.apps.pidapp:app", workers=0)
    with pytest.raises(prefork.AppLoadError, match="nope"):
        prefork.Server("tests.apps.pidapp:nope", bind="127.0.0.1:0").start()


@pytest.mark.timeout(60)
def test_systemd_socket_activation(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def command(fd: int) -> list[str]:
        # what systemd does before exec: the socket as fd 3, LISTEN_PID naming the process
        script = (f"import os, sys; os.dup2({fd}, 3); "
                  "os.environ['LISTEN_PID'] = str(os.getpid()); os.environ['LISTEN_FDS'] = '1'; "
                  "os.execv(sys.executable, [sys.executable, '-m', 'prefork', "
                  "'tests.apps.pidapp:app', '--workers', '2', '--bind', '127.0.0.1:1', "
                  f"'--error-logfile', {str(log)!r}])")
        return [sys.executable, "-c", script]

    # --bind is ignored: systemd's socket is the listener
    _serve_on_inherited_socket(command, lambda: _assert_in("fd://3", log))


def _assert_in(text: str, path: Path) -> None:
    assert text in path.read_text()


@pytest.mark.timeout(60)
def test_server_reads_the_config_file_it_is_given(tmp_path: Path) -> None:
    conf = tmp_path / "prefork.conf.py"
    conf.write_text("workers = 3\nmax_requests = 1000\n")
    with running_server("tests.apps.pidapp:app", config=str(conf), workers=2) as server:
        assert server.config.max_requests == 1000  # from the file
        assert len(server.worker_pids()) == 2  # the keyword argument wins

"""gunicorn deployments moved over unchanged: their config files and command lines, started as
real ``prefork`` processes, serve, and log what the config expects and no error.

The config files are in ``gunicorn_configs/``, written the way public deployments write them
(gunicorn's own example config, a Django container, a FastAPI service on uvicorn's worker, an
API with its own uvicorn worker subclass).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from prefork.testing import http_request, process_tree, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).resolve().parent / "gunicorn_configs"
WSGI_APP = "tests.apps.deployment:wsgi"
ASGI_APP = "tests.apps.deployment:asgi"


def _listening_port(pid: int) -> int | None:
    """The TCP port process ``pid`` listens on, read from /proc (no log format assumed)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    except OSError:
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def _get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> dict:
    status, _, body = http_request(port, path, headers=headers or {})
    assert status == 200, (status, body)
    return json.loads(body)


def _serving_port(process) -> int:
    """Wait until the arbiter listens and answers; its port."""
    port = wait_until(lambda: _listening_port(process.pid), timeout=30)
    wait_until(lambda: http_request(port, "/")[0] == 200, timeout=30)
    return port


def _worker_count(process) -> int:
    return len(process.descendants())


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Each server its own control socket directory, so no warning about a shared one."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path), **extra}
    for name in ("GUNICORN_CMD_ARGS", "PREFORK_CMD_ARGS", "PORT", "WEB_CONCURRENCY",
                 "FORWARDED_ALLOW_IPS"):
        env.setdefault(name, "")
    return env


def _assert_no_errors(output: str) -> None:
    assert "[ERROR]" not in output and "[CRITICAL]" not in output, output
    assert "Traceback" not in output, output


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if "[WARNING]" in line]


def _stop(process) -> str:
    os.kill(process.pid, signal.SIGTERM)
    assert process.proc.wait(timeout=30) == 0
    return process.output()


@pytest.mark.timeout(90)
def test_gunicorns_example_config(cli, tmp_path: Path) -> None:
    process = cli("-c", str(CONFIGS / "example_config.py"), "-b", "127.0.0.1:0", WSGI_APP,
                  env=_clean_env(tmp_path))
    port = _serving_port(process)
    seen = _get(port, "/hello")
    assert seen["env"]["SPAM"] == "eggs" and seen["env"]["DJANGO_SECRET_KEY"] == "something"
    output = process.output()
    assert "Server is ready. Spawning workers" in output
    assert f"Worker spawned (pid: {seen['pid']})" in output
    wait_until(lambda: '"GET /hello HTTP/1.1" 200' in process.output(), timeout=10)
    _assert_no_errors(output)
    assert _warnings(output) == [], output

    os.kill(seen["pid"], signal.SIGINT)  # worker_int, then the worker is replaced
    wait_until(lambda: "worker received INT or QUIT signal" in process.output(), timeout=10)
    wait_until(lambda: _get(port)["pid"] != seen["pid"], timeout=20)
    final = _stop(process)
    assert "Traceback" not in final
    _assert_no_errors(final)  # a worker stopped by its own INT is replaced, not a failure


@pytest.mark.timeout(90)
def test_django_docker_config(cli, tmp_path: Path) -> None:
    process = cli("-c", str(CONFIGS / "django_docker.py"), WSGI_APP,
                  env=_clean_env(tmp_path, PORT="0"))
    port = _serving_port(process)
    wait_until(lambda: _worker_count(process) == 2, timeout=20)
    seen = _get(port, headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert seen["env"]["APP_MODE"] == "production"
    # as under gunicorn: REMOTE_ADDR stays the peer, the scheme follows the trusted proxy
    assert (seen["client"], seen["scheme"]) == ("127.0.0.1", "https")
    output = _stop(process)
    assert "Starting the Django app with 2 workers" in output
    assert "initialised" in output
    _assert_no_errors(output)
    warned = _warnings(output)
    assert len(warned) == 2, warned
    assert "gunicorn setting 'worker_tmp_dir' ignored" in warned[0] + warned[1]
    assert "gunicorn setting 'secure_scheme_headers' ignored" in warned[0] + warned[1]


@pytest.mark.timeout(90)
def test_fastapi_config_on_uvicorns_worker_class(cli, tmp_path: Path) -> None:
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd.settimeout(20)
    try:
        process = cli("-c", str(CONFIGS / "fastapi_uvicorn.py"), ASGI_APP,
                      env=_clean_env(tmp_path, STATSD_PORT=str(statsd.getsockname()[1])))
        port = _serving_port(process)
        wait_until(lambda: process.output().count("initialised") == 2, timeout=20)
        seen = _get(port, "/items", headers={"X-Forwarded-For": "198.51.100.9"})
        assert seen["client"] == "198.51.100.9"
        metric = statsd.recv(4096).decode()
        assert metric.startswith("shop."), metric
    finally:
        statsd.close()
    output = _stop(process)
    assert "shop starting, 2 workers" in output
    assert "shop ready on 127.0.0.1:0, (list)" in output
    assert "shop worker" in output and "exiting" in output
    _assert_no_errors(output)
    assert _warnings(output) == [], output


@pytest.mark.timeout(90)
def test_config_with_a_uvicorn_worker_subclass(cli, tmp_path: Path) -> None:
    pytest.importorskip("uvicorn_worker")
    process = cli("-c", str(CONFIGS / "uvicorn_subclass.py"), ASGI_APP,
                  env=_clean_env(tmp_path))
    port = _serving_port(process)
    seen = _get(port, "/api/users", headers={"X-Forwarded-For": "192.0.2.44"})
    assert seen["root_path"] == "/api"
    assert seen["client"] == "192.0.2.44"  # CONFIG_KWARGS: proxy_headers, forwarded_allow_ips *
    output = _stop(process)
    assert "api ready" in output
    _assert_no_errors(output)
    [warned] = _warnings(output)
    assert "ApiUvicornWorker.CONFIG_KWARGS['headers']" in warned


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prefork", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=30, env={**os.environ, **(env or {})})


def test_worker_subclass_config_kwargs_reach_the_settings(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn_worker")
    printed = _run(ASGI_APP, "-k", "tests.apps.uvicorn_workers.ApiUvicornWorker",
                   "--print-config", env=_clean_env(tmp_path))
    assert printed.returncode == 0, printed.stderr
    settings = dict(line.split(" = ", 1) for line in printed.stdout.splitlines())
    assert settings["forwarded_allow_ips".ljust(28)] == "'*'"
    assert settings["root_path".ljust(28)] == "'/api'"
    assert settings["lifespan".ljust(28)] == "'off'"
    assert settings["http".ljust(28)] == "'httptools'"
    assert settings["proxy_headers".ljust(28)] == "True"


@pytest.mark.parametrize(("worker_class", "named"), [
    ("tests.apps.uvicorn_workers.NotAWorker", "not a subclass of uvicorn's UvicornWorker"),
    ("myproject.workers.MyUvicornWorker", "cannot import myproject.workers.MyUvicornWorker: "
                                          "No module named 'myproject'"),
])
def test_worker_class_that_cannot_serve_is_one_line(worker_class: str, named: str) -> None:
    result = _run(ASGI_APP, "-k", worker_class, "-b", "127.0.0.1:0")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("prefork: error: worker_class: ") and named in line, line


HEROKU = ["--bind", "0.0.0.0:0", "--workers", "2", "--worker-tmp-dir", "/dev/shm",
          "--log-file", "-"]
CLOUD_RUN = ["--bind", ":0", "--workers", "1", "--threads", "8", "--timeout", "0"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("flags", "workers", "app_first"), [(HEROKU, 2, True),
                                                             (CLOUD_RUN, 1, False)],
                         ids=["heroku", "cloud-run"])
@pytest.mark.parametrize("where", ["argv", "GUNICORN_CMD_ARGS"])
def test_platform_command_lines(cli, tmp_path: Path, flags: list[str], workers: int,
                                app_first: bool, where: str) -> None:
    if where == "argv":
        args = [WSGI_APP, *flags] if app_first else [*flags, WSGI_APP]
        process = cli(*args, env=_clean_env(tmp_path))
    else:
        process = cli(WSGI_APP, env=_clean_env(tmp_path, GUNICORN_CMD_ARGS=" ".join(flags)))
    port = _serving_port(process)
    wait_until(lambda: _worker_count(process) == workers, timeout=20)
    assert _get(port)["path"] == "/"
    output = _stop(process)
    _assert_no_errors(output)
    warned = _warnings(output)
    if "--worker-tmp-dir" in flags:
        source = "command line" if where == "argv" else "GUNICORN_CMD_ARGS"
        assert len(warned) == 1 and f"{source}: gunicorn setting 'worker_tmp_dir'" in warned[0]
    else:
        assert warned == []


@pytest.mark.timeout(60)
def test_pythonpath_puts_the_app_directory_on_the_path(cli, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "pathapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n")
    (tmp_path / "lib").mkdir()
    process = cli("pathapp:app", "--pythonpath", f"{tmp_path / 'lib'},{source}",
                  "-b", "127.0.0.1:0", env=_clean_env(tmp_path))
    port = _serving_port(process)
    assert http_request(port, "/")[2] == b"ok"
    _assert_no_errors(_stop(process))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("form", ["tcp://127.0.0.1:0", "tcp://:0", "unix:", "unix://"])
def test_gunicorns_bind_forms(cli, tmp_path: Path, form: str) -> None:
    env = _clean_env(tmp_path)
    if form.startswith("unix"):
        path = tmp_path / "app.sock"
        process = cli(WSGI_APP, "-b", f"{form}{path}", env=env)
        response = wait_until(lambda: _unix_get(str(path)), timeout=30)
        assert response.startswith(b"HTTP/1.1 200")
    else:
        process = cli(WSGI_APP, "-b", form, env=env)
        assert _get(_serving_port(process))["path"] == "/"
    _assert_no_errors(_stop(process))


@pytest.mark.timeout(60)
def test_bind_fd_serves_an_inherited_socket(tmp_path: Path) -> None:
    inherited = socket.create_server(("127.0.0.1", 0))
    port = inherited.getsockname()[1]
    fd = inherited.fileno()
    log = tmp_path / "error.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefork", WSGI_APP, "-b", f"fd://{fd}", "--workers", "2",
         "--error-logfile", str(log)],
        cwd=ROOT, pass_fds=[fd], start_new_session=True, env={**os.environ,
                                                               **_clean_env(tmp_path)})
    inherited.close()  # the server holds the only listening copy now
    pids: set[int] = set()
    try:
        wait_until(lambda: http_request(port, "/")[0] == 200, timeout=30)
        pids.update(process_tree(proc.pid))
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "fd://" in log.read_text()
        _assert_no_errors(log.read_text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _unix_get(path: str) -> bytes | None:
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(5)
    try:
        client.connect(path)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return client.recv(65536)
    except OSError:
        return None
    finally:
        client.close()

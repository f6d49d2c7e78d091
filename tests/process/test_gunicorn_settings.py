"""gunicorn's settings under their own names: TLS, -e, -k, user/group, umask, titles, output."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from prefork.testing import http_request, running_server, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.envapp:app"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "prefork", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=30, env={**os.environ, **(env or {})})


@pytest.mark.timeout(60)
def test_tls_with_a_throwaway_ca(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    with running_server(APP, workers=1, certfile=str(cert_path), keyfile=str(key_path)) as server:
        response = requests.get(f"https://127.0.0.1:{server.port}/", verify=str(ca_path),
                                timeout=10)
        assert response.status_code == 200 and response.json()["scheme"] == "https"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"https://127.0.0.1:{server.port}/", timeout=10)  # unknown CA


def test_bad_certificate_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    result = _run(APP, "--certfile", str(bogus), "--bind", "127.0.0.1:0")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("prefork: error: certfile: cannot load")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(60)
def test_raw_env_umask_and_titles() -> None:
    with running_server(APP, workers=1, raw_env=("PREFORK_TEST_ENV=from -e",), umask=0o27,
                        proc_name="shop") as server:
        seen = json.loads(http_request(server.port, "/")[2])
        assert seen["env"] == "from -e"
        assert seen["umask"] == 0o27
        assert seen["comm"] == "shop: worker"
        with open(f"/proc/{server.pid}/comm") as handle:
            assert handle.read().strip() == "shop: arbiter"


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_group_after_binding() -> None:
    nobody = pwd.getpwnam("nobody")
    with running_server(APP, workers=1, user="nobody", group=str(nobody.pw_gid),
                        bind="127.0.0.1:0") as server:
        seen = json.loads(http_request(server.port, "/")[2])
        assert (seen["uid"], seen["gid"]) == (nobody.pw_uid, nobody.pw_gid)
        with open(f"/proc/{server.pid}/status") as handle:
            uid_line = next(line for line in handle if line.startswith("Uid:"))
        assert int(uid_line.split()[1]) == nobody.pw_uid


@pytest.mark.timeout(60)
def test_capture_output(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    with running_server(APP, workers=1, capture_output=True, errorlog=str(log)) as server:
        http_request(server.port, "/print")
    assert "hello from the app's stdout" in log.read_text()


@pytest.mark.parametrize(("worker_class", "interface"), [
    ("sync", "wsgi"), ("gthread", "wsgi"), ("uvicorn.workers.UvicornWorker", "asgi"),
    ("uvicorn_worker.UvicornWorker", "asgi"), ("asgi", "asgi"),
])
def test_worker_class_maps_to_an_interface(worker_class: str, interface: str) -> None:
    from prefork.config import Config

    assert Config.from_mapping({"worker_class": worker_class}).app_interface() == interface


@pytest.mark.parametrize("worker_class",
                         ["gevent", "eventlet", "gunicorn.workers.ggevent.GeventWorker"])
def test_green_worker_classes_are_refused_in_one_line(worker_class: str) -> None:
    result = _run(APP, "-k", worker_class)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "worker_class" in line and "not supported" in line


def test_check_config_and_print_config() -> None:
    ok = _run(APP, "--check-config")
    assert ok.returncode == 0 and "configuration OK" in ok.stderr
    bad = _run("tests.apps.import_error:app", "--check-config")
    assert bad.returncode == 1 and "invalid literal" in bad.stderr
    printed = _run(APP, "--print-config", "--workers", "3")
    assert printed.returncode == 0 and "workers" in printed.stdout and "= 3" in printed.stdout


def test_port_and_web_concurrency() -> None:
    printed = _run(APP, "--print-config", env={"PORT": "9123", "WEB_CONCURRENCY": "5"})
    assert "'0.0.0.0:9123'" in printed.stdout and "= 5" in printed.stdout
    explicit = _run(APP, "--print-config", "-b", "127.0.0.1:1", "-w", "2",
                    env={"PORT": "9123", "WEB_CONCURRENCY": "5"})
    assert "'127.0.0.1:1'" in explicit.stdout and "9123" not in explicit.stdout


def test_wsgi_app_from_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"wsgi_app = {APP!r}\nworkers = 4\n")
    printed = _run("-c", str(conf), "--print-config")
    assert printed.returncode == 0 and "wsgi_app" in printed.stdout and APP in printed.stdout


@pytest.mark.timeout(60)
def test_worker_connections_over_the_limit_get_a_503() -> None:
    import socket as socketlib

    with running_server(APP, workers=1, worker_connections=3) as server:
        idle = [socketlib.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        try:
            status, headers, _ = http_request(server.port, "/")
            assert status == 503 and headers["connection"] == "close"
        finally:
            for sock in idle:
                sock.close()
        # once the worker has seen the idle ones close, there is room again
        wait_until(lambda: http_request(server.port, "/")[0] == 200, timeout=10)


@pytest.mark.timeout(60)
def test_no_sendfile_still_serves_files(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    async def file_app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": str(path)})

    for sendfile in (True, False):
        with running_server(file_app, workers=1, sendfile=sendfile) as server:
            assert http_request(server.port, "/")[2] == data

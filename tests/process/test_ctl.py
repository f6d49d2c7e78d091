"""``prefork ctl`` against real arbiters over their control socket: status, verbs, errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from prefork.arbiter.control import CLIENT_DEADLINE
from prefork.errors import PreforkError
from prefork.testing import http_request, is_alive, process_tree, running_server, wait_until
from tests.process.conftest import ROOT

APP = "tests.apps.pidapp:app"


def ctl(*args: str | Path, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                           full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "prefork", "ctl", *map(str, args)], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def status_of(path: Path) -> dict[str, Any]:
    result = ctl("--control-socket", path, "status", "--json")
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def _port_from(log: str) -> int:
    line = next(line for line in log.splitlines() if "listening on" in line)
    return int(line.split("127.0.0.1:")[1].split(";")[0])


def _hammer(port: int, stop: threading.Event, results: list[Any]) -> None:
    while not stop.is_set():
        try:
            results.append(int(http_request(port, "/", timeout=5)[2]))
        except OSError as exc:
            results.append(repr(exc))


def _exchange(path: Path, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1, reply
    answer: dict[str, Any] = json.loads(reply)
    return answer


@pytest.mark.timeout(60)
def test_status_json_matches_the_real_pids_and_counts(cli, tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    process = cli(APP, "--bind", "127.0.0.1:0", "--workers", "3", "--control-socket", str(path))
    wait_until(lambda: process.output().count("ready in") >= 3, timeout=20)
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    port = _port_from(process.output())
    served: dict[int, int] = {}
    for _ in range(30):
        status, _, body = http_request(port, "/")
        assert status == 200
        served[int(body)] = served.get(int(body), 0) + 1

    def counted() -> dict[str, Any] | None:  # heartbeats bring the counts once a second
        status = status_of(path)
        counts = {w["pid"]: w["requests"] for w in status["workers"]}
        rss_known = all(w["rss"] > 0 for w in status["workers"])
        return status if rss_known and all(counts.get(pid) == n for pid, n in served.items()) \
            else None

    status = wait_until(counted, timeout=10, interval=0.2)
    assert status["pid"] == process.pid
    workers = status["workers"]
    assert sorted(w["pid"] for w in workers) == sorted(process.descendants())
    assert sorted(w["slot"] for w in workers) == [0, 1, 2]
    assert sum(w["requests"] for w in workers) == 30
    assert all(w["state"] == "serving" and w["in_flight"] == 0 and w["restarts"] == 0
               and w["last_exit"] == "" and not w["retiring"] for w in workers)
    for worker in workers:  # the RSS is the kernel's figure for that pid
        with open(f"/proc/{worker['pid']}/statm") as handle:
            resident = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        assert 0.8 * resident < worker["rss"] < 1.25 * resident
    assert (status["target"], status["breaker"], status["stopping"]) == (3, "closed", None)
    table = ctl("--control-socket", path, "status")
    assert table.returncode == 0
    for worker in workers:
        assert f" {worker['pid']} " in table.stdout
    print(table.stdout)


@pytest.mark.timeout(90)
def test_verbs_scale_recycle_reload_stop(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with running_server(APP, workers=2, control_socket=str(path)) as server:
        scaled = ctl("--control-socket", path, "scale", "+1", "--wait")
        assert scaled.returncode == 0, scaled.stderr
        assert scaled.stdout.startswith("scaled from 2 to 3 workers; done in")
        assert len(server.worker_pids()) == 3
        scaled = ctl("scale", "-2", "--wait", "--json", "--control-socket", path)
        assert json.loads(scaled.stdout)["target"] == 1
        assert len(server.worker_pids()) == 1
        refused = ctl("--control-socket", path, "scale", "0")
        assert refused.returncode == 1
        assert refused.stderr == "prefork ctl: error: cannot scale to 0 workers (1 at least)\n"

        [old] = server.worker_pids()
        recycled = ctl("--control-socket", path, "recycle", str(old), "--wait", "--json")
        assert recycled.returncode == 0, recycled.stderr
        assert json.loads(recycled.stdout)["recycling"] == [old]
        [new] = server.worker_pids()
        assert new != old and not is_alive(old)
        unknown = ctl("--control-socket", path, "recycle", "999999")
        assert unknown.returncode == 1
        assert "no worker with pid 999999" in unknown.stderr

        reloaded = ctl("--control-socket", path, "reload", "--wait")
        assert reloaded.returncode == 0, reloaded.stderr
        assert new not in server.worker_pids() and len(server.worker_pids()) == 1

        stopped = ctl("--control-socket", path, "stop", "--wait")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith("graceful shutdown begun; stopped in")
        assert server.pid is not None
        wait_until(lambda: not is_alive(server.pid), timeout=10)  # type: ignore[arg-type]
        assert not path.exists()


@pytest.mark.timeout(90)
def test_recycle_all_under_load_fails_no_request(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with running_server(APP, workers=4, control_socket=str(path)) as server:
        before = set(server.worker_pids())
        stop, results = threading.Event(), []  # type: ignore[var-annotated]
        clients = [threading.Thread(target=_hammer, args=(server.port, stop, results))
                   for _ in range(2)]
        for client in clients:
            client.start()
        try:
            time.sleep(0.5)
            started = time.monotonic()
            recycled = ctl("--control-socket", path, "recycle", "all", "--wait", "--json")
            took = time.monotonic() - started
            time.sleep(0.5)
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=10)
        assert recycled.returncode == 0, recycled.stderr
        reply = json.loads(recycled.stdout)
        after = set(server.worker_pids())
        failures = [r for r in results if not isinstance(r, int)]
        print(f"recycle all of 4 workers: {took:.2f}s for the command (waited "
              f"{reply['waited']:.2f}s for the last old worker to exit), {len(results)} "
              f"requests from 0.5s before to 0.5s after, {len(failures)} failed")
        assert sorted(reply["recycling"]) == sorted(before)
        assert not before & after and len(after) == 4
        assert failures == []
        assert len({r for r in results if isinstance(r, int)} & after) >= 1


@pytest.mark.timeout(30)
def test_no_arbiter_at_the_path_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    result = ctl("--control-socket", missing, "status")
    assert result.returncode == 1
    assert result.stderr == (f"prefork ctl: error: no prefork arbiter at {missing} "
                             "(is it running? --control-socket)\n")
    usage = ctl("--control-socket", missing, "recycle", "some")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


@pytest.mark.timeout(60)
def test_an_explicit_path_in_use_stops_the_second_server(cli, tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    first = cli(APP, "--bind", "127.0.0.1:0", "--control-socket", str(path))
    wait_until(lambda: "ready in" in first.output(), timeout=20)
    second = cli(APP, "--bind", "127.0.0.1:0", "--control-socket", str(path))
    assert second.proc.wait(timeout=20) == 1
    assert second.output() == (f"prefork: error: control_socket: {path} is in use by "
                               f"arbiter {first.pid}\n")
    assert status_of(path)["pid"] == first.pid


@pytest.mark.timeout(60)
def test_unusable_explicit_paths_are_one_line_errors(cli, tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("keep me")
    for path, message in ((tmp_path / "no" / "dir.sock", "cannot listen on"),
                          (regular, "exists and is not a socket"),
                          (tmp_path / ("x" * 120), "cannot listen on")):
        process = cli(APP, "--bind", "127.0.0.1:0", "--control-socket", str(path))
        assert process.proc.wait(timeout=20) == 1
        output = process.output()
        assert output.startswith("prefork: error: control_socket: ") and message in output
        assert output.count("\n") == 1, output
    assert regular.read_text() == "keep me"


@pytest.mark.timeout(60)
def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # closed without unlinking: what a killed server leaves
    with running_server(APP, control_socket=str(path)) as server:
        assert status_of(path)["pid"] == server.pid


@pytest.mark.timeout(60)
def test_default_path_is_shared_by_many_servers_and_can_be_disabled(cli, tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    first = cli(APP, "--bind", "127.0.0.1:0", env=env)
    wait_until(lambda: "ready in" in first.output(), timeout=20)
    assert f"control socket at {tmp_path / 'prefork.ctl'}" in first.output()
    result = ctl("status", "--json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["pid"] == first.pid
    second = cli(APP, "--bind", "127.0.0.1:0", env=env)
    wait_until(lambda: "ready in" in second.output(), timeout=20)
    assert second.proc.poll() is None
    assert (f"[WARNING] control_socket: {tmp_path / 'prefork.ctl'} is in use by arbiter "
            f"{first.pid}; running without a control socket") in second.output()
    third = cli(APP, "--bind", "127.0.0.1:0", "--no-control-socket", env=env)
    wait_until(lambda: "ready in" in third.output(), timeout=20)
    assert "control socket" not in third.output() and "control_socket" not in third.output()
    os.kill(first.pid, signal.SIGTERM)
    assert first.proc.wait(timeout=20) == 0
    assert not (tmp_path / "prefork.ctl").exists()


@pytest.mark.timeout(60)
def test_silent_and_bad_clients_never_stall_the_arbiter(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with running_server(APP, workers=1, control_socket=str(path)) as server:
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(str(path))
        try:
            connected = time.monotonic()
            started = time.monotonic()
            assert status_of(path)["pid"] == server.pid
            assert time.monotonic() - started < 2.0
            assert http_request(server.port, "/")[0] == 200
            assert _exchange(path, b"not json\n") == {
                "error": "the request is not a JSON object"}
            assert "longer than 4096 bytes" in _exchange(path, b"x" * 5000)["error"]
            assert "unknown command 'fly'" in _exchange(path, b'{"command": "fly"}\n')["error"]
            assert _exchange(path, b'{"command": "status"}')["pid"] == server.pid  # no newline
            silent.settimeout(CLIENT_DEADLINE + 5)
            assert silent.recv(100) == b""  # the arbiter hung up on it
            assert time.monotonic() - connected >= CLIENT_DEADLINE - 0.5
        finally:
            silent.close()
        assert server.stats()["breaker"] == "closed"


def _socket_inode(path: Path, pid: int) -> int:
    with open(f"/proc/{pid}/net/unix") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 7 and fields[7] == str(path):
                return int(fields[6])
    raise AssertionError(f"{path} not found")


def _holds_socket(pid: int, inode: int) -> bool:
    target = f"socket:[{inode}]"
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
    return False


@pytest.mark.timeout(60)
def test_workers_do_not_inherit_the_control_socket(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with running_server(APP, workers=2, control_socket=str(path)) as server:
        assert server.pid is not None
        inode = _socket_inode(path, server.pid)
        assert _holds_socket(server.pid, inode)
        workers = server.worker_pids()
        assert workers and not any(_holds_socket(pid, inode) for pid in workers)


@pytest.mark.timeout(60)
def test_server_recycle_api(tmp_path: Path) -> None:
    with running_server(APP, workers=2, control_socket_disable=True) as server:
        first, second = server.worker_pids()
        assert server.recycle(first) == [first]
        wait_until(lambda: first not in server.worker_pids()
                   and len(server.worker_pids()) == 2, timeout=10)
        with pytest.raises(PreforkError, match="no worker with pid 1 "):
            server.recycle(1)
        with pytest.raises(PreforkError):
            server.recycle("some")
        current = server.worker_pids()
        assert sorted(server.recycle("all")) == sorted(current)
        wait_until(lambda: not set(server.worker_pids()) & set(current)
                   and len(server.worker_pids()) == 2, timeout=20)
        assert second not in server.worker_pids()


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.timeout(90)
def test_binary_upgrade_hands_the_control_socket_to_the_new_arbiter(cli, tmp_path: Path) -> None:
    path, pidfile = tmp_path / "ctl.sock", tmp_path / "prefork.pid"
    process = cli(APP, "--bind", "127.0.0.1:0", "--workers", "2", "--pid", str(pidfile),
                  "--control-socket", str(path))
    wait_until(lambda: process.output().count("ready in") >= 2, timeout=20)
    old = process.pid
    os.kill(old, signal.SIGUSR2)
    new = wait_until(lambda: _pid_in(pidfile) not in (None, old) and _pid_in(pidfile),
                     timeout=20)
    wait_until(lambda: process.output().count("ready in") >= 4, timeout=20)
    assert f"taking {path} over from arbiter {old} (binary upgrade)" in process.output()
    assert status_of(path)["pid"] == new
    os.kill(old, signal.SIGTERM)
    wait_until(lambda: process.proc.poll() is not None, timeout=20)
    assert path.exists()  # the old arbiter left the new one's socket alone
    status = status_of(path)
    assert status["pid"] == new and len(status["workers"]) == 2
    assert sorted(w["pid"] for w in status["workers"]) == sorted(process_tree(new))
    os.kill(new, signal.SIGTERM)
    wait_until(lambda: not is_alive(new), timeout=20)
    assert not path.exists()


@pytest.mark.timeout(90)
def test_the_old_arbiter_takes_the_path_back_when_the_new_one_dies(cli, tmp_path: Path) -> None:
    path, pidfile = tmp_path / "ctl.sock", tmp_path / "prefork.pid"
    process = cli(APP, "--bind", "127.0.0.1:0", "--pid", str(pidfile),
                  "--control-socket", str(path))
    wait_until(lambda: "ready in" in process.output(), timeout=20)
    old = process.pid
    os.kill(old, signal.SIGUSR2)
    new = wait_until(lambda: _pid_in(pidfile) not in (None, old) and _pid_in(pidfile),
                     timeout=20)
    wait_until(lambda: status_of(path)["pid"] == new, timeout=20, interval=0.2)
    os.kill(new, signal.SIGKILL)  # leaves its socket file behind, stale
    wait_until(lambda: "binary upgrade exited" in process.output(), timeout=20)
    assert status_of(path)["pid"] == old

"""gunicorn.conf.py server hooks fire at the same moments, in order, with usable arguments."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from prefork.testing import http_request, wait_until

CONF = '''
import json, os

MARKERS = {markers!r}
workers = 2
bind = ["127.0.0.1:0"]


def _mark(name, **fields):
    with open(MARKERS, "a") as handle:
        handle.write(json.dumps({{"hook": name, "pid": os.getpid(), **fields}}) + "\\n")


def on_starting(server):
    _mark("on_starting", server_pid=server.pid, workers=server.cfg.workers)

def when_ready(server):
    server.log.info("when_ready hook ran")
    _mark("when_ready", server_pid=server.pid, proc_name=server.proc_name,
          listeners=[str(listener) for listener in server.LISTENERS],
          sockname=list(server.LISTENERS[0].getsockname()))

def pre_fork(server, worker):
    _mark("pre_fork", age=worker.age)

def post_fork(server, worker):
    _mark("post_fork", worker_pid=worker.pid, age=worker.age)

def post_worker_init(worker):
    _mark("post_worker_init", worker_pid=worker.pid)

def on_reload(server):
    _mark("on_reload")

def nworkers_changed(server, new_value, old_value):
    _mark("nworkers_changed", new=new_value, old=old_value)

def child_exit(server, worker):
    _mark("child_exit", worker_pid=worker.pid)

def worker_exit(server, worker):
    _mark("worker_exit", worker_pid=worker.pid, proc_name=server.proc_name)

def worker_abort(worker):
    _mark("worker_abort", worker_pid=worker.pid)

def pre_request(worker, req):
    _mark("pre_request", method=req.method, path=req.path, query=req.query,
          agent=dict(req.headers).get("USER-AGENT"))

def post_request(worker, req, environ, resp):
    _mark("post_request", path=req.path, status=resp.status, sent=resp.sent,
          scope_type=environ.get("type"))

def on_exit(server):
    _mark("on_exit")
    raise RuntimeError("a broken hook must not take the server down")
'''


def _marks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _names(path: Path) -> list[str]:
    return [mark["hook"] for mark in _marks(path)]


@pytest.mark.timeout(60)
def test_hooks_fire_in_order(cli, tmp_path: Path) -> None:
    markers = tmp_path / "markers.jsonl"
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(CONF.format(markers=str(markers)))
    process = cli("tests.apps.pidapp:app", "-c", str(conf))
    wait_until(lambda: _names(markers).count("post_worker_init") == 2, timeout=20)
    names = _names(markers)
    # gunicorn sets the worker count (from None) before on_starting
    assert names[:3] == ["nworkers_changed", "on_starting", "when_ready"]
    assert names.count("pre_fork") == names.count("post_fork") == 2
    assert names.index("pre_fork") < names.index("post_fork") < names.index("post_worker_init")
    marks = _marks(markers)
    arbiter = process.pid
    assert all(m["pid"] == arbiter for m in marks if m["hook"] in ("on_starting", "pre_fork"))
    assert all(m["pid"] == m["worker_pid"] != arbiter
               for m in marks if m["hook"] in ("post_fork", "post_worker_init"))
    assert (marks[0]["new"], marks[0]["old"]) == (2, None)
    assert marks[1]["workers"] == 2
    assert "when_ready hook ran" in process.output()

    port = int(process.output().split("Listening at: http://127.0.0.1:")[1].split()[0])
    ready = marks[2]
    assert ready["proc_name"] == "tests.apps.pidapp:app"  # gunicorn's default_proc_name
    assert ready["listeners"] == [f"http://127.0.0.1:{port}"]
    assert ready["sockname"] == ["127.0.0.1", port]
    assert http_request(port, "/some/where?x=1", headers={"User-Agent": "probe"})[0] == 200
    wait_until(lambda: "post_request" in _names(markers), timeout=10)
    pre = next(m for m in _marks(markers) if m["hook"] == "pre_request")
    post = next(m for m in _marks(markers) if m["hook"] == "post_request")
    assert (pre["method"], pre["path"], pre["query"], pre["agent"]) == (
        "GET", "/some/where", "x=1", "probe")
    assert post["status"] == "200 OK" and post["sent"] > 0 and post["scope_type"] == "http"
    assert pre["pid"] == post["pid"] != arbiter

    os.kill(arbiter, signal.SIGTTIN)
    wait_until(lambda: any(
        m["hook"] == "nworkers_changed" and (m["new"], m["old"]) == (3, 2)
        for m in _marks(markers)), timeout=10)
    # The third worker must be up before HUP: a worker replaced while it still boots is
    # stopped before its post_worker_init, and the count below would never be reached.
    wait_until(lambda: _names(markers).count("post_worker_init") == 3, timeout=20)

    # SIGABRT is what the heartbeat watchdog sends (tested with a real hang elsewhere)
    victim = next(m["worker_pid"] for m in _marks(markers) if m["hook"] == "post_worker_init")
    os.kill(victim, signal.SIGABRT)
    wait_until(lambda: any(m["hook"] == "worker_abort" and m["worker_pid"] == victim
                           for m in _marks(markers)), timeout=10)
    wait_until(lambda: any(m["hook"] == "child_exit" and m["worker_pid"] == victim
                           for m in _marks(markers)), timeout=10)

    os.kill(arbiter, signal.SIGHUP)
    wait_until(lambda: "on_reload" in _names(markers), timeout=10)
    wait_until(lambda: _names(markers).count("post_worker_init") >= 7, timeout=20)

    os.kill(arbiter, signal.SIGTERM)
    assert process.proc.wait(timeout=30) == 0
    names = _names(markers)
    assert names[-1] == "on_exit"
    assert names.count("worker_exit") >= 3
    assert {m["proc_name"] for m in _marks(markers) if m["hook"] == "worker_exit"} == {
        "tests.apps.pidapp:app"}
    assert "hook on_exit raised" in process.output()

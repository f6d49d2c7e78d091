"""prefork.messages.send/broadcast between app code, the arbiter's hooks and every worker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from prefork.server import Server
from prefork.testing import http_request, is_alive, running_server, wait_until

APP = "tests.process.messages_app:app"

CONF = '''
import json, os

MARKERS = {markers!r}


def _mark(**fields):
    with open(MARKERS, "a") as handle:
        handle.write(json.dumps({{"pid": os.getpid(), **fields}}) + "\\n")


def on_message(server, worker, obj):
    _mark(hook="on_message", worker_pid=worker.pid, slot=worker.slot, obj=obj)
    if obj.get("note", "").startswith("echo"):
        _mark(hook="echoed", reached=server.broadcast({{"echo": obj["note"]}}))


def on_broadcast(worker, obj):
    _mark(hook="on_broadcast", worker_pid=worker.pid, obj=obj)
'''


def _marks(path: Path, hook: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [mark for line in path.read_text().splitlines()
            if (mark := json.loads(line))["hook"] == hook]


def _get(server: Server, path: str) -> tuple[int, dict[str, Any]]:
    status, _, body = http_request(server.port, path)
    return status, json.loads(body)


def _from_every_worker(server: Server, path: str, check: Callable[[dict[str, Any]], None],
                       timeout: float = 20.0) -> dict[int, dict[str, Any]]:
    """Fresh connections until every worker answered ``path``; ``check`` sees every answer."""
    pids = set(server.worker_pids())
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while set(answers) != pids:
        assert time.monotonic() < deadline, f"only {sorted(answers)} of {sorted(pids)} answered"
        status, answer = _get(server, path)
        assert status == 200, answer
        check(answer)
        answers[answer["pid"]] = answer
    return answers


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    conf = tmp_path / "prefork.conf.py"
    conf.write_text(CONF.format(markers=str(tmp_path / "markers.jsonl")))
    monkeypatch.setenv("MESSAGES_APP_DIR", str(tmp_path))
    with running_server(APP, config=str(conf), workers=3,
                        errorlog=str(tmp_path / "error.log")) as started:
        yield started


@pytest.mark.timeout(60)
def test_broadcast_invalidates_the_cache_of_every_worker(server: Server, tmp_path: Path) -> None:
    markers = tmp_path / "markers.jsonl"
    source = tmp_path / "greeting"
    source.write_text("v1")
    _from_every_worker(server, "/value?greeting", lambda a: None)
    source.write_text("v2")
    # every worker still answers from its own cache: this is the staleness to fix
    _from_every_worker(server, "/value?greeting", lambda a: _equal(a["value"], "v1"))

    status, answer = _get(server, "/invalidate?greeting")
    assert status == 200 and answer["sent"] is True
    sender = answer["pid"]
    workers = set(server.worker_pids())
    # the config hook ran in every worker, the sender included
    wait_until(lambda: {m["pid"] for m in _marks(markers, "on_broadcast")} == workers,
               timeout=10)
    assert all(m["obj"] == {"invalidate": "greeting"} and m["worker_pid"] == m["pid"]
               for m in _marks(markers, "on_broadcast"))
    # and so did the in-app listeners (after one that raises): nobody serves v1 any more
    _from_every_worker(server, "/value?greeting", lambda a: _equal(a["value"], "v2"))
    states = _from_every_worker(server, "/state", lambda a: None)
    for pid, state in states.items():
        assert state["last"][-1] == {"data": {"invalidate": "greeting"}, "origin": sender}
        assert state["async_received"] == state["received"] == 1
        assert state["worker_pid"] == pid
    assert sorted(state["slot"] for state in states.values()) == [0, 1, 2]
    log = (tmp_path / "error.log").read_text()
    assert log.count("on_broadcast listener _broken_listener raised") == 3
    assert "RuntimeError: a listener that fails on purpose" in log
    assert server.worker_pids() and set(server.worker_pids()) == workers  # no worker died


def _equal(value: Any, expected: Any) -> None:
    assert value == expected


@pytest.mark.timeout(60)
def test_send_reaches_the_arbiter_hook_which_can_broadcast(server: Server,
                                                           tmp_path: Path) -> None:
    markers = tmp_path / "markers.jsonl"
    status, answer = _get(server, "/send?hello")
    assert status == 200 and answer["sent"] is True
    mark = wait_until(lambda: _marks(markers, "on_message"), timeout=10)[0]
    slots = {w["pid"]: w["slot"] for w in server.stats()["workers"]}
    assert mark["pid"] == server.pid  # the hook runs in the arbiter
    assert mark["worker_pid"] == answer["pid"] and mark["slot"] == slots[answer["pid"]]
    assert mark["obj"] == {"note": "hello"}

    # server.broadcast from the hook reaches every worker, with the arbiter as origin
    assert _get(server, "/send?echo-1")[1]["sent"] is True
    assert wait_until(lambda: _marks(markers, "echoed"), timeout=10)[0]["reached"] == 3
    wait_until(lambda: {m["pid"] for m in _marks(markers, "on_broadcast")}
               == set(server.worker_pids()), timeout=10)
    _from_every_worker(server, "/state", lambda a: _equal(
        a["last"][-1], {"data": {"echo": "echo-1"}, "origin": server.pid}))


@pytest.mark.timeout(60)
def test_bad_payloads_raise_in_the_app_and_the_worker_survives(server: Server) -> None:
    before = {w["pid"]: w["restarts"] for w in server.stats()["workers"]}
    status, answer = _get(server, "/bad")
    assert status == 500 and answer["error"].startswith("TypeError: prefork.messages messages "
                                                        "must be JSON data: Object of type set")
    status, answer = _get(server, "/big")
    assert status == 500
    assert answer["error"] == ("ValueError: prefork.messages message of 65539 bytes is over the "
                               "65536-byte limit; send a key, not the data")
    assert is_alive(answer["pid"])
    _from_every_worker(server, "/state", lambda a: None)
    assert {w["pid"]: w["restarts"] for w in server.stats()["workers"]} == before


@pytest.mark.timeout(90)
def test_a_broadcast_flood_drops_messages_not_the_arbiter(server: Server) -> None:
    workers = set(server.worker_pids())
    started = time.monotonic()
    status, answer = _get(server, "/flood?20000")
    elapsed = time.monotonic() - started
    assert status == 200 and answer["attempted"] == 20000
    assert 0 < answer["delivered"] <= 20000
    # the arbiter still answers, nobody was restarted, and every worker still serves
    assert set(server.worker_pids()) == workers
    assert all(w["restarts"] == 0 for w in server.stats()["workers"])
    states = _from_every_worker(server, "/state", lambda a: None)
    received = {pid: state["received"] for pid, state in states.items()}
    assert all(0 < count <= answer["delivered"] for count in received.values())
    print(f"flood: {answer['delivered']}/20000 accepted by the arbiter in {elapsed:.2f}s; "
          f"received per worker: {sorted(received.values())}")


@pytest.mark.timeout(60)
def test_send_from_wsgi_request_threads(tmp_path: Path) -> None:
    markers = tmp_path / "markers.jsonl"
    conf = tmp_path / "prefork.conf.py"
    conf.write_text(CONF.format(markers=str(markers)))
    with running_server("tests.process.messages_app:wsgi_app", config=str(conf), workers=1,
                        threads=8) as server:
        notes = [f"thread-{i}" for i in range(64)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda note: _get(server, f"/send?{note}"), notes))
        assert all(status == 200 and answer["sent"] is True for status, answer in answers)
        wait_until(lambda: len(_marks(markers, "on_message")) == len(notes), timeout=10)
        assert sorted(m["obj"]["note"] for m in _marks(markers, "on_message")) == sorted(notes)

"""Unit tests for the control socket's pure parts: default path, directory checks, the command
table (on a fake arbiter), and ``prefork ctl``'s status table."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from prefork.arbiter.control import (
    COMMANDS,
    RequestError,
    default_socket_path,
    ensure_private_directory,
)
from prefork.ctl import format_bytes, format_duration, format_status
from prefork.errors import BootError

pytestmark = pytest.mark.timeout(10)


def test_default_path_prefers_a_writable_runtime_dir(tmp_path: Path) -> None:
    assert default_socket_path({"XDG_RUNTIME_DIR": str(tmp_path)}, 1000) == \
        str(tmp_path / "prefork.ctl")


@pytest.mark.parametrize("environ", [{}, {"XDG_RUNTIME_DIR": ""},
                                     {"XDG_RUNTIME_DIR": "/nonexistent/run"}])
def test_default_path_falls_back_to_a_per_user_tmp_dir(environ: dict[str, str]) -> None:
    assert default_socket_path(environ, 1000, tmp="/tmp") == "/tmp/prefork-1000/prefork.ctl"


def test_private_directory_is_created_0700(tmp_path: Path) -> None:
    directory = tmp_path / "prefork-1"
    ensure_private_directory(str(directory))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    ensure_private_directory(str(directory))  # an existing safe one is fine


def test_private_directory_refuses_one_writable_by_others(tmp_path: Path) -> None:
    directory = tmp_path / "prefork-1"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(BootError, match="writable by others"):
        ensure_private_directory(str(directory))


def test_private_directory_refuses_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "prefork-1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BootError, match="not a directory"):
        ensure_private_directory(str(tmp_path / "prefork-1"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_private_directory_refuses_another_users(tmp_path: Path) -> None:
    directory = tmp_path / "prefork-1"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, -1)
    with pytest.raises(BootError, match="belongs to uid 65534"):
        ensure_private_directory(str(directory))


class FakeArbiter:
    def __init__(self) -> None:
        self.target = 2
        self.stopping: str | None = None
        self.replacements_pending: list[int] = []
        self.calls: list[tuple[str, Any]] = []

    def stats(self) -> dict[str, Any]:
        worker = {"pid": 11, "slot": 0, "state": "serving", "uptime": 5.0, "requests": 3,
                  "in_flight": 0, "connections": 0, "rss": 0, "cpu_percent": 0.0,
                  "restarts": 0, "retiring": False}
        return {"pid": 10, "target": self.target, "breaker": "closed",
                "workers": [worker, {**worker, "pid": 12, "slot": 1, "state": "draining"}],
                "slots": {0: {"restarts": 2, "last_exit": "killed by SIGKILL"},
                          1: {"restarts": 0, "last_exit": ""}}}

    def reload(self) -> list[int]:
        self.calls.append(("reload", None))
        return [w["pid"] for w in self.stats()["workers"] if w["state"] != "draining"]

    def scale(self, count: int) -> None:
        self.calls.append(("scale", count))
        self.target = count

    def recycle(self, pid: int | None = None) -> list[int]:
        if pid not in (None, 11):
            raise LookupError(f"no worker with pid {pid} to recycle")
        self.calls.append(("recycle", pid))
        return [11]

    def begin_stop(self, graceful: bool) -> None:
        self.stopping = "graceful" if graceful else "fast"


def test_status_joins_each_worker_with_its_slot_history() -> None:
    status = COMMANDS["status"](FakeArbiter(), {"command": "status"})
    first = status["workers"][0]
    assert (first["restarts"], first["last_exit"]) == (2, "killed by SIGKILL")
    assert status["stopping"] is None and status["recycling"] == []


def test_scale_absolute_and_relative() -> None:
    arbiter = FakeArbiter()
    assert COMMANDS["scale"](arbiter, {"workers": 5}) == {"target": 5, "previous": 2}
    assert COMMANDS["scale"](arbiter, {"change": -2}) == {"target": 3, "previous": 5}
    assert COMMANDS["scale"](arbiter, {"change": 1}) == {"target": 4, "previous": 3}


@pytest.mark.parametrize("request_", [{}, {"workers": "3"}, {"workers": True}, {"workers": 0},
                                      {"change": -2}, {"change": 1.5}])
def test_scale_rejects_bad_arguments(request_: dict[str, Any]) -> None:
    arbiter = FakeArbiter()
    with pytest.raises(RequestError):
        COMMANDS["scale"](arbiter, request_)
    assert arbiter.calls == []


def test_recycle_one_all_and_unknown() -> None:
    arbiter = FakeArbiter()
    assert COMMANDS["recycle"](arbiter, {"pid": 11}) == {"recycling": [11]}
    assert COMMANDS["recycle"](arbiter, {"pid": "all"}) == {"recycling": [11]}
    with pytest.raises(RequestError, match="no worker with pid 99"):
        COMMANDS["recycle"](arbiter, {"pid": 99})
    with pytest.raises(RequestError):
        COMMANDS["recycle"](arbiter, {"pid": "11"})
    assert arbiter.calls == [("recycle", 11), ("recycle", None)]


def test_reload_lists_the_workers_it_replaces_and_stop_is_graceful_by_default() -> None:
    arbiter = FakeArbiter()
    assert COMMANDS["reload"](arbiter, {}) == {"replacing": [11]}  # 12 is draining already
    assert COMMANDS["stop"](arbiter, {}) == {"stopping": "graceful"}
    with pytest.raises(RequestError):
        COMMANDS["stop"](FakeArbiter(), {"graceful": "no"})


def test_status_table() -> None:
    status = COMMANDS["status"](FakeArbiter(), {})
    status["workers"][0].update(rss=52_428_800, cpu_percent=12.345, uptime=3725.0)
    lines = format_status(status).splitlines()
    assert lines[0] == "arbiter 10: 2 workers wanted, breaker closed"
    assert lines[1].split() == ["SLOT", "PID", "STATE", "UPTIME", "RSS", "CPU%", "REQUESTS",
                                "IN-FLIGHT", "RESTARTS", "LAST", "EXIT"]
    assert lines[2].split() == ["0", "11", "serving", "1h02m", "50.0M", "12.3", "3", "0", "2",
                                "killed", "by", "SIGKILL"]
    assert lines[3].split()[:3] == ["1", "12", "draining"]


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (59.9, "59s"), (61, "1m01s"),
                                               (3600, "1h00m"), (90061, "1d01h")])
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_bytes() -> None:
    assert (format_bytes(0), format_bytes(1048576 * 3 // 2)) == ("-", "1.5M")

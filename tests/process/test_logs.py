"""Log files: USR1 reopens them after rotation; an unwritable log never stops serving."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from prefork.testing import http_request, running_server, wait_until

APP = "tests.apps.pidapp:app"


@pytest.mark.timeout(60)
def test_usr1_after_moving_the_error_log_writes_to_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    with running_server(APP, workers=1, errorlog=str(log)) as server:
        rotated = tmp_path / "error.log.1"
        log.rename(rotated)
        os.kill(server.pid, signal.SIGUSR1)
        wait_until(lambda: log.exists() and "reopened log files" in log.read_text(), timeout=10)
        os.kill(server.pid, signal.SIGTTIN)
        wait_until(lambda: "scaling from 1 to 2" in log.read_text(), timeout=10)
        assert "scaling" not in rotated.read_text()
        assert http_request(server.port, "/")[0] == 200


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_under_the_log_does_not_stop_serving() -> None:
    # /dev/full fails every write with ENOSPC, as a full disk does
    with running_server(APP, workers=2, errorlog="/dev/full") as server:
        statuses = [http_request(server.port, "/")[0] for _ in range(20)]
        assert statuses == [200] * 20
        os.kill(server.worker_pids()[0], signal.SIGKILL)  # the crash is logged (and lost)
        wait_until(lambda: len([w for w in server.stats()["workers"]
                                if w["state"] == "serving"]) == 2, timeout=10)
        assert http_request(server.port, "/")[0] == 200


@pytest.mark.timeout(60)
def test_log_format_json_makes_both_logs_one_object_per_line(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    with running_server(APP, workers=1, errorlog=str(error_log), accesslog=str(access_log),
                        log_format="json") as server:
        assert http_request(server.port, "/?q=1", headers={"X-Request-ID": "abc-123"})[0] == 200
        os.kill(server.worker_pids()[0], signal.SIGKILL)  # an error line from the arbiter
        wait_until(lambda: "died after" in error_log.read_text(), timeout=10)
        wait_until(lambda: access_log.exists() and access_log.read_text(), timeout=10)
    errors = [json.loads(line) for line in error_log.read_text().splitlines()]
    assert errors and all(set(entry) >= {"time", "level", "logger", "pid", "message"}
                          for entry in errors)
    died = next(entry for entry in errors if "died after" in entry["message"])
    assert died["level"] == "error" and died["logger"] == "prefork.error"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", died["time"])
    (access,) = [json.loads(line) for line in access_log.read_text().splitlines()]
    assert access["request_id"] == "abc-123" and access["status"] == 200
    assert (access["path"], access["query"]) == ("/", "q=1")


@pytest.mark.timeout(60)
def test_an_explicit_access_format_wins_over_log_format_json(tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    with running_server(APP, workers=1, accesslog=str(access_log), log_format="json",
                        access_log_format="%(m)s %(U)s %(s)s") as server:
        assert http_request(server.port, "/x")[0] == 200
        wait_until(lambda: access_log.exists() and access_log.read_text(), timeout=10)
    assert access_log.read_text() == "GET /x 200\n"

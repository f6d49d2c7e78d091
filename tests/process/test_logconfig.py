"""Logging configurations written for gunicorn configure prefork's logs as they did gunicorn's.

Each configuration here has the shape such configurations have in the wild: loggers named
``gunicorn.error`` and ``gunicorn.access`` only, often with ``disable_existing_loggers: True``,
a JSON-looking format string, file handlers, or an ini file for ``--log-config``. They are run
as real servers from a ``gunicorn.conf.py``; whatever they say, the line that explains why the
server stops reaches stderr.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from prefork.testing import http_request, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.pidapp:app"

JSON_FORMAT = ('{"time": "%(asctime)s", "level": "%(levelname)s", "pid": %(process)d, '
               '"message": "%(message)s"}')

JSON_TO_STDOUT = {
    "version": 1,
    "disable_existing_loggers": True,
    "formatters": {"json": {"format": JSON_FORMAT}, "access": {"format": "ACCESS %(message)s"}},
    "handlers": {
        "error": {"class": "logging.StreamHandler", "formatter": "json",
                  "stream": "ext://sys.stdout"},
        "access": {"class": "logging.StreamHandler", "formatter": "access",
                   "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
}


def _files_config(error_log: Path, access_log: Path) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": True,
        "formatters": {
            "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
                        "datefmt": "[%Y-%m-%d %H:%M:%S %z]"},
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "error_file": {"class": "logging.FileHandler", "formatter": "generic",
                           "filename": str(error_log)},
            "access_file": {"class": "logging.FileHandler", "formatter": "access",
                            "filename": str(access_log)},
        },
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_file"], "propagate": False,
                               "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["access_file"],
                                "propagate": False, "qualname": "gunicorn.access"},
        },
    }


INI = """\
[loggers]
keys=root, gunicorn.error, gunicorn.access

[handlers]
keys=console, error_file, access_file

[formatters]
keys=generic, access

[logger_root]
level=INFO
handlers=console

[logger_gunicorn.error]
level=INFO
handlers=error_file
propagate=0
qualname=gunicorn.error

[logger_gunicorn.access]
level=INFO
handlers=access_file
propagate=0
qualname=gunicorn.access

[handler_console]
class=StreamHandler
formatter=generic
args=(sys.stdout, )

[handler_error_file]
class=logging.FileHandler
formatter=generic
args=('%(here)s/error.log',)

[handler_access_file]
class=logging.FileHandler
formatter=access
args=('%(here)s/access.log',)

[formatter_generic]
format=%(asctime)s [%(process)d] [%(levelname)s] %(message)s
datefmt=%Y-%m-%d %H:%M:%S
class=logging.Formatter

[formatter_access]
format=ACCESS %(message)s
class=logging.Formatter
"""


def _conf(tmp_path: Path, logconfig_dict: dict) -> Path:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"logconfig_dict = {logconfig_dict!r}\nworkers = 1\n"
                    "bind = ['127.0.0.1:0']\ncontrol_socket_disable = True\n")
    return conf


def _port(text: str) -> int | None:
    found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+) \(\d+\)", text)
    return int(found.group(1)) if found else None


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# a formatter class named by "()", as python-json-logger's is in such configurations
JSON_CLASS_TO_STDOUT = {**JSON_TO_STDOUT, "formatters": {
    "json": {"()": "prefork.logs.error_log.JsonLineFormatter"},
    "access": {"format": "ACCESS %(message)s"}}}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("logconfig", [JSON_TO_STDOUT, JSON_CLASS_TO_STDOUT],
                         ids=["format-string", "formatter-class"])
def test_json_format_for_gunicorn_loggers_formats_every_prefork_line(
        cli, tmp_path: Path, logconfig: dict) -> None:
    process = cli(APP, "-c", str(_conf(tmp_path, logconfig)))
    port = wait_until(lambda: "ready in" in process.output() and _port(process.output()),
                      timeout=20)
    assert http_request(port, "/json-path")[0] == 200
    wait_until(lambda: "ACCESS " in process.output(), timeout=10)
    lines = [line for line in process.output().splitlines() if line.strip()]
    (access,) = [line for line in lines if line.startswith("ACCESS ")]
    assert '"GET /json-path HTTP/1.1" 200' in access
    # every other line went through the JSON format configured for gunicorn.error
    messages = [json.loads(line)["message"] for line in lines if line != access]
    assert any(message.startswith("Starting prefork ") for message in messages)
    assert any(message.startswith("Booting worker with pid: ") for message in messages)


@pytest.mark.timeout(60)
def test_file_handlers_for_gunicorn_loggers_receive_prefork_logs(cli, tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    process = cli(APP, "-c", str(_conf(tmp_path, _files_config(error_log, access_log))))
    port = wait_until(lambda: "ready in" in _read(error_log) and _port(_read(error_log)),
                      timeout=20)
    assert http_request(port, "/to-a-file")[0] == 200
    wait_until(lambda: "/to-a-file" in _read(access_log), timeout=10)
    assert re.search(r"^\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] \[\d+\] \[INFO\] Starting prefork ",
                     _read(error_log), re.MULTILINE)
    assert "GET /to-a-file HTTP/1.1" in _read(access_log).splitlines()[0]
    assert "Listening at" not in process.output()  # the configured handlers only, as gunicorn


@pytest.mark.timeout(60)
def test_ini_log_config_in_gunicorns_shape(cli, tmp_path: Path) -> None:
    ini = tmp_path / "logging.ini"
    ini.write_text(INI)
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    process = cli(APP, "--bind", "127.0.0.1:0", "-w", "1", "--log-config", str(ini),
                  "--no-control-socket")
    port = wait_until(lambda: "ready in" in _read(error_log) and _port(_read(error_log)),
                      timeout=20)
    assert http_request(port, "/from-ini")[0] == 200
    line = wait_until(lambda: _read(access_log).strip(), timeout=10)
    assert line.startswith("ACCESS ") and "GET /from-ini HTTP/1.1" in line
    assert "Listening at" not in process.output()


@pytest.mark.timeout(90)
def test_why_it_stops_reaches_stderr_whatever_the_config_says(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    conf = _conf(tmp_path, _files_config(error_log, access_log))
    result = subprocess.run(
        [sys.executable, "-m", "prefork", "tests.apps.import_error:app", "-c", str(conf),
         "--restart-backoff-base", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert "circuit breaker open" in line and "at tests/apps/import_error.py:5" in line
    assert "circuit breaker open" in _read(error_log)  # and where the config sends it
    assert _read(error_log).count("Traceback (most recent call last)") == 1


@pytest.mark.timeout(60)
def test_bind_failure_and_bad_setting_reach_stderr_past_a_logging_config(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    conf = _conf(tmp_path, _files_config(error_log, access_log))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        bind = subprocess.run(
            [sys.executable, "-m", "prefork", APP, "-c", str(conf), "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bind.returncode == 1
    assert bind.stderr.strip().splitlines()[-1] == (
        f"prefork: error: bind: cannot listen on 127.0.0.1:{port}: Address already in use")
    bad = subprocess.run(
        [sys.executable, "-m", "prefork", APP, "-c", str(conf), "--timeout", "soon"],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "timeout" in bad.stderr.strip().splitlines()[-1]

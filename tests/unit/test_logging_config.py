"""Logging configurations written for gunicorn, translated for prefork's loggers; the stop
reason's way to stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefork.logs.error_log import (
    ini_with_prefork_loggers,
    log_stop_reason,
    prefork_counterpart,
    with_prefork_loggers,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("gunicorn.error", "prefork.error"), ("gunicorn.access", "prefork.access"),
    ("gunicorn", "prefork"), ("gunicorn.error.sub", "prefork.error.sub"),
    ("gunicornish", None), ("uvicorn.error", None), ("root", None),
])
def test_prefork_counterpart(name: str, expected: str | None) -> None:
    assert prefork_counterpart(name) == expected


def test_dict_config_gives_gunicorn_loggers_to_prefork() -> None:
    config = {"version": 1, "disable_existing_loggers": True, "loggers": {
        "gunicorn.error": {"level": "DEBUG", "handlers": ["file"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["out"]},
        "myapp": {"level": "INFO"},
    }}
    loggers = with_prefork_loggers(config)["loggers"]
    assert loggers["prefork.error"] == config["loggers"]["gunicorn.error"]
    assert loggers["prefork.access"] == {"level": "INFO", "handlers": ["out"]}
    assert set(loggers) == {"gunicorn.error", "gunicorn.access", "myapp", "prefork.error",
                            "prefork.access"}
    assert "prefork.error" not in config["loggers"]  # the setting itself is left alone


def test_dict_config_naming_prefork_itself_wins() -> None:
    config = {"loggers": {"gunicorn.error": {"level": "DEBUG"},
                          "prefork.error": {"level": "WARNING"}}}
    assert with_prefork_loggers(config)["loggers"]["prefork.error"] == {"level": "WARNING"}
    assert with_prefork_loggers({"version": 1}) == {"version": 1}


def test_ini_gets_prefork_sections(tmp_path: Path) -> None:
    ini = tmp_path / "log.ini"
    ini.write_text(
        "[loggers]\nkeys=root, gunicorn.error\n\n"
        "[logger_root]\nlevel=INFO\nhandlers=\n\n"
        "[logger_gunicorn.error]\nlevel=DEBUG\nhandlers=file\npropagate=0\n"
        "qualname=gunicorn.error\n\n"
        "[handler_file]\nclass=FileHandler\nargs=('%(here)s/e.log',)\n")
    parser = ini_with_prefork_loggers(str(ini))
    keys = [key.strip() for key in parser.get("loggers", "keys").split(",")]
    assert keys == ["root", "gunicorn.error", "gunicorn.error_as_prefork"]
    section = parser["logger_gunicorn.error_as_prefork"]
    assert (section["qualname"], section["level"], section["handlers"],
            section["propagate"]) == ("prefork.error", "DEBUG", "file", "0")
    assert parser.get("handler_file", "args") == f"('{tmp_path}/e.log',)"  # gunicorn's %(here)s


@pytest.fixture
def quiet_logger(tmp_path: Path) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"test.stop.{tmp_path.name}")
    logger.propagate = False
    handler = logging.FileHandler(tmp_path / "only-here.log")
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    handler.close()


def test_stop_reason_reaches_stderr_past_a_file_handler(
        quiet_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    log_stop_reason(quiet_logger, "circuit breaker open: %s", "why")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("[CRITICAL] circuit breaker open: why")


def test_stop_reason_reaches_stderr_from_a_disabled_logger(
        quiet_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    quiet_logger.disabled = True
    log_stop_reason(quiet_logger, "stopping")
    assert capsys.readouterr().err.strip().endswith("[CRITICAL] stopping")


def test_stop_reason_is_not_doubled_when_the_log_is_stderr(
        quiet_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    quiet_logger.addHandler(handler)
    try:
        log_stop_reason(quiet_logger, "stopping once")
    finally:
        quiet_logger.removeHandler(handler)
    assert capsys.readouterr().err.splitlines() == ["stopping once"]

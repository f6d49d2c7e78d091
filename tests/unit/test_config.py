"""The settings table, merging of sources and the generated command line."""

from __future__ import annotations

import sys

import pytest

from prefork.cli import resolve
from prefork.config import SETTINGS, Config, merge
from prefork.errors import ConfigError
from prefork.sources import IGNORED_KEY, env_args, load_config_file


def test_table_and_config_fields_agree() -> None:
    fields = set(Config.__dataclass_fields__)
    assert fields == {setting.name for setting in SETTINGS}


def test_defaults() -> None:
    config = Config.from_mapping({})
    assert config.bind == ("127.0.0.1:8000",)
    assert config.workers == 1 and config.dispatch == "reuseport"
    assert config.worker_count() == 1


def test_workers_auto_is_usable_cores() -> None:
    import os

    config = Config.from_mapping({"workers": "auto"})
    assert config.worker_count() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("name, value, fragment", [
    ("workers", 0, "workers"),
    ("workers", "many", "workers"),
    ("timeout", -1, "timeout"),
    ("dispatch", "random", "dispatch"),
    ("breaker_threshold", 0, "breaker_threshold"),
    ("send_timeout", 0, "send_timeout"),
    ("nonsense", 1, "nonsense"),
])
def test_bad_values_name_the_setting(name: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Config.from_mapping({name: value})


def test_cross_setting_validation() -> None:
    with pytest.raises(ConfigError, match="restart_backoff_cap"):
        Config.from_mapping({"restart_backoff_base": 10, "restart_backoff_cap": 1})


def test_merge_later_wins_and_none_means_unset() -> None:
    merged = merge({"workers": 2, "bind": ("a:1",)}, {"workers": None, "bind": ()},
                   {"timeout": 5})
    assert merged == {"workers": 2, "bind": ("a:1",), "timeout": 5}


def test_env_args_order() -> None:
    env = {"GUNICORN_CMD_ARGS": "--workers 3", "PREFORK_CMD_ARGS": "--timeout '7'"}
    assert env_args(env) == [("GUNICORN_CMD_ARGS", ["--workers", "3"]),
                             ("PREFORK_CMD_ARGS", ["--timeout", "7"])]


def test_python_config_file(tmp_path) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("import os\nworkers = 3\nbind = ['127.0.0.1:9000']\nunrelated = 1\n")
    assert load_config_file(str(path)) == {"workers": 3, "bind": ["127.0.0.1:9000"]}


def test_toml_config_file(tmp_path) -> None:
    path = tmp_path / "prefork.toml"
    path.write_text('workers = 2\ndispatch = "shared"\n')
    assert load_config_file(str(path)) == {"workers": 2, "dispatch": "shared"}
    path.write_text("wrokers = 2\n")
    with pytest.raises(ConfigError, match="wrokers"):
        load_config_file(str(path))


def test_config_file_errors_are_one_line(tmp_path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("workers = 1/0\n")
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        load_config_file(str(path))


def test_precedence_file_env_argv(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "conf.py"
    path.write_text("workers = 2\ntimeout = 11\nkeepalive = 9\n")
    env = {"GUNICORN_CMD_ARGS": "--timeout 12 --keep-alive 3", "PREFORK_CMD_ARGS": "--timeout 13"}
    app, config, _ = resolve(["-c", str(path), "myapp:app", "--keep-alive", "4"], env)
    assert app == "myapp:app"
    assert (config.workers, config.timeout, config.keepalive) == (2, 13.0, 4.0)


def test_negatable_flags_and_repeatable_bind(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, config, _ = resolve(["m:app", "--no-server-header", "-b", "127.0.0.1:1", "-b", "unix:/s",
                         "--preload"], {})
    assert config.server_header is False and config.preload_app is True
    assert config.bind == ("127.0.0.1:1", "unix:/s")


def test_gunicorn_names_are_mapped_reported_or_refused(tmp_path) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("asgi_lifespan = 'off'\nspew = True\nworkers = 2\n")
    assert load_config_file(str(path)) == {"lifespan": "off", "workers": 2,
                                           IGNORED_KEY: ["spew"]}
    for line, named in [("dirty_apps = ['m:App']", "dirty arbiter"), ("daemon = True", "daemon"),
                        ("protocol = 'uwsgi'", "uWSGI")]:
        path.write_text(line + "\n")
        with pytest.raises(ConfigError, match=named):
            load_config_file(str(path))
    path.write_text("protocol = 'http'\ndaemon = False\nhttp_protocols = 'h1'\ndirty_apps = []\n"
                    "dirty_workers = 0\nspew = False\ntmp_upload_dir = None\n")
    assert load_config_file(str(path)) == {"http2": "h1"}
    path.write_text("http_protocols = 'h2,h1'\ndirty_workers = 2\nhttp2_max_frame_size = 1\n")
    assert load_config_file(str(path)) == {"http2": "h2,h1", "http2_max_frame_size": 1,
                                           IGNORED_KEY: ["dirty_workers"]}


def test_http_protocols_turn_http2_on_or_off() -> None:
    # gunicorn serves HTTP/1.1 beside a list without h1, as prefork does
    for value, served in [("h1", False), ("h2, h1", True), ("h2", True), (["h2"], True),
                          ("true", True), (False, False)]:
        assert Config.from_mapping({"http2": value}).http2 is served
    with pytest.raises(ConfigError, match="http2: unknown protocol 'h3'"):
        Config.from_mapping({"http2": "h2,h3"})
    with pytest.raises(ConfigError, match="http2_max_frame_size: must be between 16384"):
        Config.from_mapping({"http2_max_frame_size": 1})


def test_ignored_settings_are_announced(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gunicorn.conf.py").write_text("reload = True\nworkers = 3\n")
    _, config, notices = resolve(["m:app"], {})
    assert config.workers == 3
    assert notices == ["config: gunicorn.conf.py: gunicorn setting 'reload' ignored: code "
                       "reloading is not built yet"]


def test_json_error_log_lines_carry_the_exception() -> None:
    import json
    import logging

    from prefork.logs.error_log import JsonLineFormatter

    try:
        raise ValueError("bad \"thing\"\n")
    except ValueError:
        record = logging.LogRecord("prefork.error", logging.ERROR, __file__, 1,
                                   "failed: %s", ("x",), sys.exc_info())
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed: x" and entry["level"] == "error"
    assert 'ValueError: bad "thing"' in entry["exception"]


def test_parser_choice_falls_back_or_names_the_setting(monkeypatch) -> None:
    import importlib.util

    from prefork.errors import ConfigError
    from prefork.http.parsers import choose_parser

    assert choose_parser("auto") == "httptools"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "httptools" else real(name, *args))
    assert choose_parser("auto") == "h11"
    with pytest.raises(ConfigError, match=r"^http: the httptools parser is not installed"):
        choose_parser("httptools")

"""Every gunicorn 27 setting is classified, and its flags are accepted, from every source.

The list below is gunicorn 27.0.1's ``KNOWN_SETTINGS`` (name and command-line flags), kept here
as data: gunicorn is not a dependency, and a new gunicorn setting is a decision to make here.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from prefork.cli import build_command, resolve
from prefork.config import SETTINGS_BY_NAME
from prefork.errors import ConfigError
from prefork.sources import (
    GUNICORN_ALIASES,
    GUNICORN_ONLY,
    IGNORED,
    REFUSED,
    SAME_AS_GUNICORN,
)

GUNICORN_27_SETTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("config", ("-c", "--config")),
    ("wsgi_app", ()),
    ("bind", ("-b", "--bind")),
    ("backlog", ("--backlog",)),
    ("workers", ("-w", "--workers")),
    ("worker_class", ("-k", "--worker-class")),
    ("threads", ("--threads",)),
    ("worker_connections", ("--worker-connections",)),
    ("max_requests", ("--max-requests",)),
    ("max_requests_jitter", ("--max-requests-jitter",)),
    ("timeout", ("-t", "--timeout")),
    ("graceful_timeout", ("--graceful-timeout",)),
    ("keepalive", ("--keep-alive",)),
    ("limit_request_line", ("--limit-request-line",)),
    ("limit_request_fields", ("--limit-request-fields",)),
    ("limit_request_field_size", ("--limit-request-field_size",)),
    ("reload", ("--reload",)),
    ("reload_engine", ("--reload-engine",)),
    ("reload_extra_files", ("--reload-extra-file",)),
    ("spew", ("--spew",)),
    ("check_config", ("--check-config",)),
    ("print_config", ("--print-config",)),
    ("preload_app", ("--preload",)),
    ("sendfile", ("--no-sendfile",)),
    ("reuse_port", ("--reuse-port",)),
    ("chdir", ("--chdir",)),
    ("daemon", ("-D", "--daemon")),
    ("raw_env", ("-e", "--env")),
    ("pidfile", ("-p", "--pid")),
    ("worker_tmp_dir", ("--worker-tmp-dir",)),
    ("user", ("-u", "--user")),
    ("group", ("-g", "--group")),
    ("umask", ("-m", "--umask")),
    ("initgroups", ("--initgroups",)),
    ("tmp_upload_dir", ()),
    ("secure_scheme_headers", ()),
    ("forwarded_allow_ips", ("--forwarded-allow-ips",)),
    ("accesslog", ("--access-logfile",)),
    ("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",)),
    ("access_log_format", ("--access-logformat",)),
    ("errorlog", ("--error-logfile", "--log-file")),
    ("loglevel", ("--log-level",)),
    ("capture_output", ("--capture-output",)),
    ("logger_class", ("--logger-class",)),
    ("logconfig", ("--log-config",)),
    ("logconfig_dict", ()),
    ("logconfig_json", ("--log-config-json",)),
    ("syslog_addr", ("--log-syslog-to",)),
    ("syslog", ("--log-syslog",)),
    ("syslog_prefix", ("--log-syslog-prefix",)),
    ("syslog_facility", ("--log-syslog-facility",)),
    ("enable_stdio_inheritance", ("-R", "--enable-stdio-inheritance")),
    ("statsd_host", ("--statsd-host",)),
    ("dogstatsd_tags", ("--dogstatsd-tags",)),
    ("statsd_prefix", ("--statsd-prefix",)),
    ("enable_backlog_metric", ("--enable-backlog-metric",)),
    ("proc_name", ("-n", "--name")),
    ("default_proc_name", ()),
    ("pythonpath", ("--pythonpath",)),
    ("paste", ("--paste", "--paster")),
    ("on_starting", ()),
    ("on_reload", ()),
    ("when_ready", ()),
    ("pre_fork", ()),
    ("post_fork", ()),
    ("post_worker_init", ()),
    ("worker_int", ()),
    ("worker_abort", ()),
    ("pre_exec", ()),
    ("pre_request", ()),
    ("post_request", ()),
    ("child_exit", ()),
    ("worker_exit", ()),
    ("nworkers_changed", ()),
    ("on_exit", ()),
    ("ssl_context", ()),
    ("proxy_protocol", ("--proxy-protocol",)),
    ("proxy_allow_ips", ("--proxy-allow-from",)),
    ("protocol", ("--protocol",)),
    ("uwsgi_allow_ips", ("--uwsgi-allow-from",)),
    ("keyfile", ("--keyfile",)),
    ("certfile", ("--certfile",)),
    ("ssl_version", ("--ssl-version",)),
    ("cert_reqs", ("--cert-reqs",)),
    ("ca_certs", ("--ca-certs",)),
    ("suppress_ragged_eofs", ("--suppress-ragged-eofs",)),
    ("do_handshake_on_connect", ("--do-handshake-on-connect",)),
    ("ciphers", ("--ciphers",)),
    ("http_protocols", ("--http-protocols",)),
    ("http2_cleartext", ("--http2-cleartext",)),
    ("http2_max_concurrent_streams", ("--http2-max-concurrent-streams",)),
    ("http2_initial_window_size", ("--http2-initial-window-size",)),
    ("http2_max_frame_size", ("--http2-max-frame-size",)),
    ("http2_max_header_list_size", ("--http2-max-header-list-size",)),
    ("raw_paste_global_conf", ("--paste-global",)),
    ("permit_obsolete_folding", ("--permit-obsolete-folding",)),
    ("strip_header_spaces", ("--strip-header-spaces",)),
    ("permit_unconventional_http_method", ("--permit-unconventional-http-method",)),
    ("permit_unconventional_http_version", ("--permit-unconventional-http-version",)),
    ("casefold_http_method", ("--casefold-http-method",)),
    ("forwarder_headers", ("--forwarder-headers",)),
    ("header_map", ("--header-map",)),
    ("asgi_loop", ("--asgi-loop",)),
    ("asgi_lifespan", ("--asgi-lifespan",)),
    ("asgi_disconnect_grace_period", ("--asgi-disconnect-grace-period",)),
    ("websocket_max_message_size", ("--websocket-max-message-size",)),
    ("http_parser", ("--http-parser",)),
    ("root_path", ("--root-path",)),
    ("dirty_apps", ("--dirty-app",)),
    ("dirty_workers", ("--dirty-workers",)),
    ("dirty_timeout", ("--dirty-timeout",)),
    ("dirty_threads", ("--dirty-threads",)),
    ("dirty_graceful_timeout", ("--dirty-graceful-timeout",)),
    ("on_dirty_starting", ()),
    ("dirty_post_fork", ()),
    ("dirty_worker_init", ()),
    ("dirty_worker_exit", ()),
    ("control_socket", ("--control-socket",)),
    ("control_socket_mode", ("--control-socket-mode",)),
    ("control_socket_disable", ("--no-control-socket",)),
)


def _accepted_flags() -> set[str]:
    flags: set[str] = set()
    for param in build_command().params:
        if isinstance(param, click.Option):
            flags.update(param.opts)
            flags.update(param.secondary_opts)
    return flags


def test_the_list_is_gunicorn_27s() -> None:
    names = [name for name, _ in GUNICORN_27_SETTINGS]
    assert len(names) == len(set(names)) == 120


@pytest.mark.parametrize(("name", "flags"), GUNICORN_27_SETTINGS,
                         ids=[name for name, _ in GUNICORN_27_SETTINGS])
def test_every_setting_is_classified_and_its_flags_accepted(name: str,
                                                            flags: tuple[str, ...]) -> None:
    classes = [name in SAME_AS_GUNICORN, name in GUNICORN_ALIASES,
               name in IGNORED or name in REFUSED]
    assert sum(classes) == 1, f"{name} must be same, translated, or ignored/refused"
    if name in SAME_AS_GUNICORN:
        assert name in SETTINGS_BY_NAME
        assert set(flags) <= set(SETTINGS_BY_NAME[name].flags) | {"--no-sendfile"}
    else:
        assert GUNICORN_ONLY[name].flags == flags
        assert name not in SETTINGS_BY_NAME
    assert set(flags) <= _accepted_flags()


def test_nothing_is_classified_that_gunicorn_lacks() -> None:
    names = {name for name, _ in GUNICORN_27_SETTINGS}
    classified = set(SAME_AS_GUNICORN) | set(GUNICORN_ALIASES) | set(IGNORED) | set(REFUSED)
    assert classified == names == set(SAME_AS_GUNICORN) | set(GUNICORN_ONLY)


# flags seen in Dockerfiles and Procfiles, with a value gunicorn would accept
IGNORED_ON_THE_COMMAND_LINE = [
    (["--worker-tmp-dir", "/dev/shm"], "worker_tmp_dir"),
    (["--log-syslog"], "syslog"),
    (["-R"], "enable_stdio_inheritance"),
    (["--enable-stdio-inheritance"], "enable_stdio_inheritance"),
    (["--reload"], "reload"),
    (["--reload-extra-file", "a.html", "--reload-extra-file", "b.html"], "reload_extra_files"),
    (["--log-syslog-to", "udp://localhost:514"], "syslog_addr"),
    (["--paste", "production.ini"], "paste"),
    (["--spew"], "spew"),
    (["--initgroups"], "initgroups"),
]


@pytest.mark.parametrize(("args", "name"), IGNORED_ON_THE_COMMAND_LINE,
                         ids=[name for _, name in IGNORED_ON_THE_COMMAND_LINE])
@pytest.mark.parametrize("where", ["argv", "GUNICORN_CMD_ARGS"])
def test_ignored_flags_start_with_one_warning(args: list[str], name: str, where: str,
                                              tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if where == "argv":
        _, _, notices = resolve(["m:app", *args], {})
    else:
        _, _, notices = resolve(["m:app"], {"GUNICORN_CMD_ARGS": " ".join(args)})
    source = "command line" if where == "argv" else "GUNICORN_CMD_ARGS"
    assert notices == [f"{source}: gunicorn setting {name!r} ignored: {IGNORED[name]}"]


@pytest.mark.parametrize("args", [["--suppress-ragged-eofs"], ["--asgi-loop", "auto"],
                                  ["--protocol", "http"], ["--http-protocols", "h1"],
                                  ["--dirty-workers", "0"], ["--header-map", "drop"]])
def test_gunicorn_defaults_given_explicitly_are_silent(args: list[str], tmp_path: Path,
                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve(["m:app", *args], {})[2] == []


def test_aliases_on_the_command_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, config, notices = resolve(["m:app", "--asgi-lifespan", "off", "--http-parser", "h11",
                                  "--websocket-max-message-size", "1024"], {})
    assert (config.lifespan, config.http, config.ws_max_size, notices) == ("off", "h11", 1024, [])


@pytest.mark.parametrize(("args", "named"), [
    (["-D"], "daemon"), (["--daemon"], "daemon"), (["--protocol", "uwsgi"], "uWSGI"),
    (["--dirty-app", "m:Thing"], "dirty arbiter"),
])
@pytest.mark.parametrize("where", ["argv", "GUNICORN_CMD_ARGS"])
def test_refused_values_say_where_they_came_from(args: list[str], named: str, where: str,
                                                 tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if where == "argv":
        argv, environ, source = ["m:app", *args], {}, "command line"
    else:
        argv, environ, source = ["m:app"], {"GUNICORN_CMD_ARGS": " ".join(args)}, where
    with pytest.raises(ConfigError, match=named) as caught:
        resolve(argv, environ)
    assert str(caught.value).startswith(f"{source} sets ")


def test_one_warning_per_setting_across_sources(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gunicorn.conf.py").write_text("worker_tmp_dir = '/dev/shm'\n")
    _, _, notices = resolve(["m:app", "--worker-tmp-dir", "/tmp"],
                            {"GUNICORN_CMD_ARGS": "--worker-tmp-dir /dev/shm"})
    assert len(notices) == 1 and notices[0].startswith("command line: ")


def test_errors_in_gunicorn_cmd_args_name_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^GUNICORN_CMD_ARGS: workers: expected an integer "
                                          r"or 'auto', got 'abc'$"):
        resolve(["m:app"], {"GUNICORN_CMD_ARGS": "--workers abc"})
    with pytest.raises(click.UsageError, match=r"^GUNICORN_CMD_ARGS: No such option '--wrkers'"):
        resolve(["m:app"], {"GUNICORN_CMD_ARGS": "--wrkers 2"})
    with pytest.raises(ConfigError, match=r"^PREFORK_CMD_ARGS: timeout: expected a number"):
        resolve(["m:app"], {"PREFORK_CMD_ARGS": "--timeout soon"})
    with pytest.raises(ConfigError, match=r"^GUNICORN_CMD_ARGS: bind: port 99999 "):
        resolve(["m:app"], {"GUNICORN_CMD_ARGS": "--bind 127.0.0.1:99999"})
    with pytest.raises(ConfigError, match=r"^GUNICORN_CMD_ARGS: forwarded_allow_ips: "):
        resolve(["m:app"], {"GUNICORN_CMD_ARGS": "--forwarded-allow-ips 300.1.1.1"})


def test_a_bad_value_names_the_setting_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        resolve(["m:app", "--workers", "abc"], {})
    assert str(caught.value) == "workers: expected an integer or 'auto', got 'abc'"


def test_forwarded_allow_ips_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {"FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.1"}
    assert resolve(["m:app"], environ)[1].forwarded_allow_ips == "10.0.0.0/8, 192.168.1.1"
    explicit = resolve(["m:app", "--forwarded-allow-ips", "*"], environ)[1]
    assert explicit.forwarded_allow_ips == "*"
    assert resolve(["m:app"], {})[1].forwarded_allow_ips == "127.0.0.1,::1"
    (tmp_path / "gunicorn.conf.py").write_text("forwarded_allow_ips = '172.16.0.1'\n")
    assert resolve(["m:app"], environ)[1].forwarded_allow_ips == "172.16.0.1"


def test_gunicorn_defaults_that_prefork_takes() -> None:
    from prefork.config import Config

    config = Config.from_mapping({})
    assert (config.keepalive, config.limit_request_line) == (2.0, 4094)


@pytest.mark.parametrize(("args", "expected"), [
    (["--proxy-protocol"], True), (["--proxy-protocol", "v2"], True),
    (["--proxy-protocol", "auto"], True), (["--proxy-protocol", "off"], False), ([], False),
])
def test_proxy_protocol_takes_gunicorns_optional_mode(args: list[str], expected: bool,
                                                      tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve([*args, "--", "m:app"] if args else ["m:app"], {})[1].proxy_protocol is expected


def test_print_config_spells_values_as_gunicorn_users_write_them() -> None:
    from prefork.config import Config
    from prefork.server import printable_value

    config = Config.from_mapping({"workers": "auto", "umask": "022"})
    assert printable_value(config, "umask", config.umask) == "0o022"
    assert printable_value(config, "control_socket_mode", 0o600) == "0o600"
    assert printable_value(config, "workers", 0) == f"'auto'  # {config.worker_count()} here"
    assert printable_value(config, "keepalive", 2.0) == "2.0"


def test_hooks_see_gunicorns_types_in_cfg() -> None:
    import logging

    from prefork.config import Config
    from prefork.hooks import ServerView, WorkerView

    config = Config.from_mapping({"bind": ("127.0.0.1:1", "unix:/tmp/s"), "workers": "auto"})
    server = ServerView(1, config, logging.getLogger("t"), dict, lambda: 1)
    assert server.cfg.bind == ["127.0.0.1:1", "unix:/tmp/s"]
    assert server.cfg.workers == config.worker_count() > 0
    assert server.cfg.timeout == config.timeout
    worker = WorkerView(2, 1, 0, 0, config, logging.getLogger("t"))
    assert isinstance(worker.cfg.bind, list)
    server.cfg = Config.from_mapping({"bind": ("127.0.0.1:2",)})  # the arbiter on reload
    assert server.cfg.bind == ["127.0.0.1:2"]


def test_uvicorns_h11_worker_means_the_h11_parser() -> None:
    from prefork.config import Config
    from prefork.workerclass import adopt_worker_class

    config, notices = adopt_worker_class(
        Config.from_mapping({"worker_class": "uvicorn_worker.UvicornH11Worker"}))
    assert (config.http, config.app_interface(), notices) == ("h11", "asgi", [])
    explicit, _ = adopt_worker_class(Config.from_mapping(
        {"worker_class": "uvicorn.workers.UvicornH11Worker", "http": "httptools"}))
    assert explicit.http == "httptools"


def test_config_as_gunicorn_locates_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    (tmp_path / "deploy_settings.py").write_text("import os\nworkers = 3\nspew = False\n")
    (tmp_path / "conf.py").write_text("workers = 4\n")
    assert resolve(["m:app", "-c", "python:deploy_settings"], {})[1].workers == 3
    assert resolve(["m:app", "-c", "file:conf.py"], {})[1].workers == 4
    with pytest.raises(ConfigError, match=r"^config: cannot import no_such_settings: "):
        resolve(["m:app", "-c", "python:no_such_settings"], {})
    monkeypatch.delitem(__import__("sys").modules, "deploy_settings")

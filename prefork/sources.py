"""Where settings come from besides the command line: configuration files (Python, as
``gunicorn.conf.py``, or TOML) and the ``GUNICORN_CMD_ARGS``/``PREFORK_CMD_ARGS`` variables;
and how gunicorn's setting names translate to prefork's, whatever the source.

Every gunicorn 27 setting is accepted under its own name and flags, from a config file, the
command line or ``GUNICORN_CMD_ARGS``, and none is dropped silently: most are prefork's under
the same name, a few are read under prefork's name (``asgi_lifespan`` is ``lifespan``), the ones
prefork has no use for are reported as ignored, one line each, when the server starts (unless
left at gunicorn's default, as ``daemon = False`` in gunicorn's own example config), and the
few values that ask for what prefork cannot be (``daemon = True``, the uWSGI protocol, dirty
arbiters) stop the start with one line naming the setting and where it
was set. This module reads files and nothing else; it never prints.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

from prefork.config import SETTINGS_BY_NAME
from prefork.errors import ConfigError

# gunicorn's names for settings prefork has under another name
GUNICORN_ALIASES = {
    "asgi_lifespan": "lifespan",
    "websocket_max_message_size": "ws_max_size",
    "http_parser": "http",
    "http_protocols": "http2",  # "h2,h1": http2 reads gunicorn's list (prefork.config)
}
# gunicorn's values that ask for what prefork cannot be: refused at start-up in one line. The
# same settings at any other value are gunicorn's default (silent) or listed in IGNORED.
REFUSED = {  # setting: (the values refused, what they ask for)
    "daemon": ("true", "daemon mode (run prefork in the foreground under a supervisor)"),
    "protocol": ("uwsgi", "the uWSGI protocol"),
    "dirty_apps": ("any app", "a dirty arbiter"),
}
# gunicorn's settings that prefork has under the same name and meaning
SAME_AS_GUNICORN = (
    "access_log_format", "accesslog", "backlog", "bind", "ca_certs", "capture_output",
    "cert_reqs", "certfile", "chdir", "control_socket", "control_socket_disable",
    "control_socket_mode", "dogstatsd_tags", "statsd_host", "statsd_prefix",
    "check_config", "child_exit", "ciphers", "config", "errorlog", "forwarded_allow_ips",
    "graceful_timeout", "group", "http2_cleartext", "http2_initial_window_size",
    "http2_max_concurrent_streams", "http2_max_frame_size", "http2_max_header_list_size",
    "keepalive", "keyfile", "limit_request_field_size",
    "limit_request_fields", "limit_request_line", "logconfig", "logconfig_dict", "loglevel",
    "max_requests", "max_requests_jitter", "nworkers_changed", "on_exit", "on_reload",
    "on_starting", "pidfile", "post_fork", "post_request", "post_worker_init", "pre_exec",
    "pre_fork", "pre_request", "preload_app", "print_config", "proc_name", "proxy_allow_ips",
    "proxy_protocol", "pythonpath", "raw_env",
    "reuse_port", "root_path", "sendfile", "threads", "timeout", "umask", "user", "when_ready",
    "worker_abort", "worker_class", "worker_connections", "worker_exit", "worker_int",
    "workers", "wsgi_app",
)
# gunicorn settings prefork accepts but does not act on, and why: set to anything but
# gunicorn's default, each is reported once at start-up
IGNORED = {
    "asgi_disconnect_grace_period": "http.disconnect is delivered as soon as the client goes",
    "asgi_loop": "workers always run uvloop",
    "casefold_http_method": "methods are passed as sent",
    "default_proc_name": "the titles name proc_name, else the app as given",
    "dirty_graceful_timeout": "dirty arbiters are not supported",
    "dirty_post_fork": "dirty arbiters are not supported",
    "dirty_threads": "dirty arbiters are not supported",
    "dirty_timeout": "dirty arbiters are not supported",
    "dirty_worker_exit": "dirty arbiters are not supported",
    "dirty_worker_init": "dirty arbiters are not supported",
    "dirty_workers": "dirty arbiters are not supported",
    "disable_redirect_access_to_syslog": "no syslog output",
    "do_handshake_on_connect": "TLS handshakes run on the event loop",
    "enable_backlog_metric": "no backlog metric",
    "enable_stdio_inheritance": "workers inherit stdio already",
    "forwarder_headers": "forwarded headers are handled by --proxy-headers",
    "header_map": "header names with underscores are always dropped (WSGI)",
    "initgroups": "supplementary groups are always set when switching user as root",
    "logconfig_json": "use logconfig_dict",
    "logger_class": "logging goes through the standard logging module (logconfig_dict)",
    "on_dirty_starting": "dirty arbiters are not supported",
    "paste": "PasteDeploy is not supported",
    "permit_obsolete_folding": "obs-fold is always refused (request smuggling)",
    "permit_unconventional_http_method": "methods are checked by the parser",
    "permit_unconventional_http_version": "only HTTP/1.0 and 1.1 are served",
    "raw_paste_global_conf": "PasteDeploy is not supported",
    "reload": "code reloading is not built yet",
    "reload_engine": "code reloading is not built yet",
    "reload_extra_files": "code reloading is not built yet",
    "secure_scheme_headers": "the scheme comes from X-Forwarded-Proto or Forwarded",
    "spew": "no tracing mode",
    "ssl_context": "use certfile, keyfile, ca_certs, cert_reqs and ciphers",
    "ssl_version": "TLS 1.2 or newer is always required",
    "strip_header_spaces": "whitespace before a colon is always refused",
    "suppress_ragged_eofs": "ragged TLS EOFs end the connection quietly",
    "syslog": "log to stderr and let the platform collect it",
    "syslog_addr": "log to stderr and let the platform collect it",
    "syslog_facility": "log to stderr and let the platform collect it",
    "syslog_prefix": "log to stderr and let the platform collect it",
    "tmp_upload_dir": "request bodies spill to the system temporary directory",
    "uwsgi_allow_ips": "the uWSGI protocol is not supported",
    "worker_tmp_dir": "the heartbeat runs over the control channel, not a temporary file",
}


class GunicornOnly(NamedTuple):
    """How gunicorn spells a setting that prefork has not under the same name."""

    flags: tuple[str, ...]
    default: Any = None
    action: str = "value"  # "value" takes one, "flag" takes none, "append" is repeatable


_SECURE_SCHEME_HEADERS = {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https",
                          "X-FORWARDED-SSL": "on"}
# gunicorn 27's flags and defaults of every setting in GUNICORN_ALIASES, REFUSED and IGNORED:
# the command line and GUNICORN_CMD_ARGS accept them, and a value equal to the default is silent
GUNICORN_ONLY: dict[str, GunicornOnly] = {
    "asgi_disconnect_grace_period": GunicornOnly(("--asgi-disconnect-grace-period",), 3),
    "asgi_lifespan": GunicornOnly(("--asgi-lifespan",), "auto"),
    "asgi_loop": GunicornOnly(("--asgi-loop",), "auto"),
    "casefold_http_method": GunicornOnly(("--casefold-http-method",), False, "flag"),
    "daemon": GunicornOnly(("-D", "--daemon"), False, "flag"),
    "default_proc_name": GunicornOnly((), "gunicorn"),
    "dirty_apps": GunicornOnly(("--dirty-app",), (), "append"),
    "dirty_graceful_timeout": GunicornOnly(("--dirty-graceful-timeout",), 30),
    "dirty_post_fork": GunicornOnly(()),
    "dirty_threads": GunicornOnly(("--dirty-threads",), 1),
    "dirty_timeout": GunicornOnly(("--dirty-timeout",), 300),
    "dirty_worker_exit": GunicornOnly(()),
    "dirty_worker_init": GunicornOnly(()),
    "dirty_workers": GunicornOnly(("--dirty-workers",), 0),
    "disable_redirect_access_to_syslog": GunicornOnly(
        ("--disable-redirect-access-to-syslog",), False, "flag"),
    "do_handshake_on_connect": GunicornOnly(("--do-handshake-on-connect",), False, "flag"),
    "enable_backlog_metric": GunicornOnly(("--enable-backlog-metric",), False, "flag"),
    "enable_stdio_inheritance": GunicornOnly(("-R", "--enable-stdio-inheritance"), False,
                                             "flag"),
    "forwarder_headers": GunicornOnly(("--forwarder-headers",), "SCRIPT_NAME,PATH_INFO"),
    "header_map": GunicornOnly(("--header-map",), "drop"),
    "http_parser": GunicornOnly(("--http-parser",), "auto"),
    "http_protocols": GunicornOnly(("--http-protocols",), "h1"),
    "initgroups": GunicornOnly(("--initgroups",), False, "flag"),
    "logconfig_json": GunicornOnly(("--log-config-json",)),
    "logger_class": GunicornOnly(("--logger-class",), "gunicorn.glogging.Logger"),
    "on_dirty_starting": GunicornOnly(()),
    "paste": GunicornOnly(("--paste", "--paster")),
    "permit_obsolete_folding": GunicornOnly(("--permit-obsolete-folding",), False, "flag"),
    "permit_unconventional_http_method": GunicornOnly(
        ("--permit-unconventional-http-method",), False, "flag"),
    "permit_unconventional_http_version": GunicornOnly(
        ("--permit-unconventional-http-version",), False, "flag"),
    "protocol": GunicornOnly(("--protocol",), "http"),
    "raw_paste_global_conf": GunicornOnly(("--paste-global",), (), "append"),
    "reload": GunicornOnly(("--reload",), False, "flag"),
    "reload_engine": GunicornOnly(("--reload-engine",), "auto"),
    "reload_extra_files": GunicornOnly(("--reload-extra-file",), (), "append"),
    "secure_scheme_headers": GunicornOnly((), _SECURE_SCHEME_HEADERS),
    "spew": GunicornOnly(("--spew",), False, "flag"),
    "ssl_context": GunicornOnly(()),
    "ssl_version": GunicornOnly(("--ssl-version",)),
    "strip_header_spaces": GunicornOnly(("--strip-header-spaces",), False, "flag"),
    "suppress_ragged_eofs": GunicornOnly(("--suppress-ragged-eofs",), True, "flag"),
    "syslog": GunicornOnly(("--log-syslog",), False, "flag"),
    "syslog_addr": GunicornOnly(("--log-syslog-to",)),
    "syslog_facility": GunicornOnly(("--log-syslog-facility",), "user"),
    "syslog_prefix": GunicornOnly(("--log-syslog-prefix",)),
    "tmp_upload_dir": GunicornOnly(()),
    "uwsgi_allow_ips": GunicornOnly(("--uwsgi-allow-from",), "127.0.0.1,::1"),
    "websocket_max_message_size": GunicornOnly(("--websocket-max-message-size",),
                                               16 * 1024 * 1024),
    "worker_tmp_dir": GunicornOnly(("--worker-tmp-dir",)),
}
IGNORED_KEY = "__ignored__"  # where load_config_file lists the ignored names


def load_config_file(path: str) -> dict[str, Any]:
    """Settings from a Python file (module-level names, as gunicorn.conf.py) or a TOML file;
    as in gunicorn, ``file:PATH`` is the same as ``PATH`` and ``python:MODULE`` imports a module
    (searched from the current directory first) and reads its names."""
    if path.startswith("python:"):
        return _settings_from_module(path, path[len("python:"):])
    path = path.removeprefix("file:")
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    if path.endswith(".toml"):
        return _settings_from_toml(path, source)
    namespace: dict[str, Any] = {"__file__": path, "__name__": "__config__"}
    try:
        exec(compile(source, path, "exec"), namespace)
    except Exception as exc:
        raise ConfigError(f"config: error in {path}: {type(exc).__name__}: {exc}") from None
    return translate_gunicorn_names(namespace, f"config: {path}")


def translate_gunicorn_names(namespace: Mapping[str, Any], source: str) -> dict[str, Any]:
    """prefork's settings among the names one source gives (a config file's module names, the
    options of one command line): aliases renamed, refused values raising ConfigError that
    begins with ``source``, other gunicorn settings not at gunicorn's default listed under
    ``IGNORED_KEY``; names that are no setting at all (a config file's imports) are dropped."""
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in namespace.items():
        if name.startswith("_") or name == "config":
            continue
        if name in SETTINGS_BY_NAME:
            if value is not None or name not in values:  # an alias may have set it
                values[name] = value
        elif name in GUNICORN_ALIASES:
            if value is not None:
                values[GUNICORN_ALIASES[name]] = value
        elif name in GUNICORN_ONLY:
            feature = _refused_feature(name, value)
            if feature:
                raise ConfigError(f"{source} sets {name} = {value!r}: {feature} is not "
                                  "supported by prefork")
            if not _is_gunicorn_default(name, value):
                ignored.append(name)
    if ignored:
        values[IGNORED_KEY] = ignored
    return values


def _refused_feature(name: str, value: Any) -> str | None:
    """What a refused setting's value asks for, or None where prefork serves it as asked."""
    if value is None or name not in REFUSED:
        return None
    refused = {
        "daemon": _is_true(value),
        "protocol": str(value).strip().lower() != "http",
        "dirty_apps": bool(value),
    }[name]
    return REFUSED[name][1] if refused else None


def _is_true(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on", "y"}


def _is_gunicorn_default(name: str, value: Any) -> bool:
    """Whether a gunicorn-only setting is left as gunicorn leaves it: not worth a warning."""
    default = GUNICORN_ONLY[name].default
    if value is None or value == default:
        return True
    if isinstance(default, bool):
        return _is_true(value) == default
    if isinstance(default, tuple):
        return not value
    return str(value).strip().lower() == str(default).lower()


def _settings_from_module(location: str, module_name: str) -> dict[str, Any]:
    saved = list(sys.path)
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"config: cannot import {module_name}: {type(exc).__name__}: "
                          f"{exc}") from None
    finally:
        sys.path[:] = saved
    return translate_gunicorn_names(vars(module), f"config: {location}")


def _settings_from_toml(path: str, source: bytes) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser from PyPI, a dependency on 3.10 only
        import tomli as tomllib
    try:
        document = tomllib.loads(source.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
    table = document.get("tool", {}).get("prefork", document)
    unknown = sorted(name for name in table
                     if name not in SETTINGS_BY_NAME and name not in GUNICORN_ONLY)
    if unknown:
        raise ConfigError(f"config: unknown setting {unknown[0]!r} in {path}")
    return translate_gunicorn_names(table, f"config: {path}")


def env_args(environ: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """(variable, its argument list) for GUNICORN_CMD_ARGS then PREFORK_CMD_ARGS (later wins)."""
    lists = []
    for name in ("GUNICORN_CMD_ARGS", "PREFORK_CMD_ARGS"):
        text = environ.get(name, "").strip()
        if text:
            try:
                lists.append((name, shlex.split(text)))
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    return lists

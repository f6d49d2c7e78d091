"""Where settings come from besides the command line: configuration files (Python, as
``gunicorn.conf.py``, or TOML) and the ``GUNICORN_CMD_ARGS``/``PREFORK_CMD_ARGS`` variables.

A ``gunicorn.conf.py`` may name gunicorn settings prefork does not have. None is dropped
silently: a few are read under prefork's name (``asgi_lifespan`` is ``lifespan``), the ones whose
absence would change what the server is (dirty arbiters, the uWSGI protocol, HTTP/2) stop the
start with one line naming them, and the rest are reported as ignored, one line each, when the
server starts. This module reads files and nothing else; it never prints.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from typing import Any

from prefork.config import SETTINGS_BY_NAME
from prefork.errors import ConfigError

# gunicorn's names for settings prefork has under another name
GUNICORN_ALIASES = {
    "asgi_lifespan": "lifespan",
    "websocket_max_message_size": "ws_max_size",
    "http_parser": "http",
}
# gunicorn features prefork does not have and that change what the server is: refused
REFUSED_PREFIXES = ("dirty_", "http2_", "on_dirty_")
REFUSED = {
    "protocol": "the uWSGI protocol",
    "uwsgi_allow_ips": "the uWSGI protocol",
    "http_protocols": "HTTP/2",
    "daemon": "daemon mode (run prefork in the foreground under a supervisor)",
}
# gunicorn's settings that prefork has under the same name and meaning
SAME_AS_GUNICORN = (
    "access_log_format", "accesslog", "backlog", "bind", "ca_certs", "capture_output",
    "cert_reqs", "certfile", "chdir", "control_socket", "control_socket_disable",
    "control_socket_mode", "dogstatsd_tags", "statsd_host", "statsd_prefix",
    "check_config", "child_exit", "ciphers", "config", "errorlog", "forwarded_allow_ips",
    "graceful_timeout", "group", "keepalive", "keyfile", "limit_request_field_size",
    "limit_request_fields", "limit_request_line", "logconfig", "logconfig_dict", "loglevel",
    "max_requests", "max_requests_jitter", "nworkers_changed", "on_exit", "on_reload",
    "on_starting", "pidfile", "post_fork", "post_request", "post_worker_init", "pre_exec",
    "pre_fork", "pre_request", "preload_app", "print_config", "proc_name", "proxy_allow_ips",
    "proxy_protocol", "raw_env",
    "reuse_port", "root_path", "sendfile", "threads", "timeout", "umask", "user", "when_ready",
    "worker_abort", "worker_class", "worker_connections", "worker_exit", "worker_int",
    "workers", "wsgi_app",
)
# gunicorn settings prefork accepts but does not act on (reported at start-up), and why
IGNORED = {
    "asgi_disconnect_grace_period": "http.disconnect is delivered as soon as the client goes",
    "asgi_loop": "workers always run uvloop",
    "casefold_http_method": "methods are passed as sent",
    "default_proc_name": "the title is proc_name or 'prefork'",
    "disable_redirect_access_to_syslog": "no syslog output",
    "do_handshake_on_connect": "TLS handshakes run on the event loop",
    "enable_backlog_metric": "no metrics yet",
    "enable_stdio_inheritance": "workers inherit stdio already",
    "forwarder_headers": "forwarded headers are handled by --proxy-headers",
    "header_map": "header names with underscores are always dropped (WSGI)",
    "initgroups": "supplementary groups are always set when switching user as root",
    "logconfig_json": "use logconfig_dict",
    "logger_class": "logging goes through the standard logging module (logconfig_dict)",
    "paste": "PasteDeploy is not supported",
    "permit_obsolete_folding": "obs-fold is always refused (request smuggling)",
    "permit_unconventional_http_method": "methods are checked by the parser",
    "permit_unconventional_http_version": "only HTTP/1.0 and 1.1 are served",
    "pythonpath": "use --chdir or PYTHONPATH",
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
    "worker_tmp_dir": "the heartbeat runs over the control channel, not a temporary file",
}
IGNORED_KEY = "__ignored__"  # where load_config_file lists the ignored names


def load_config_file(path: str) -> dict[str, Any]:
    """Settings from a Python file (module-level names, as gunicorn.conf.py) or a TOML file."""
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
    return translate_gunicorn_names(namespace, path)


def translate_gunicorn_names(namespace: Mapping[str, Any], path: str) -> dict[str, Any]:
    """prefork's settings among a config file's names: aliases renamed, refused features
    raising ConfigError, other gunicorn settings listed under ``IGNORED_KEY``."""
    values: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in namespace.items():
        if name.startswith("_") or name == "config":
            continue
        if name in SETTINGS_BY_NAME:
            values[name] = value
        elif name in GUNICORN_ALIASES:
            values[GUNICORN_ALIASES[name]] = value
        elif name in REFUSED or name.startswith(REFUSED_PREFIXES):
            if name == "protocol" and str(value).lower() == "http":
                continue
            if name == "http_protocols" and str(value).lower() in ("h1", "http/1.1"):
                continue
            feature = REFUSED.get(name) or (
                "HTTP/2" if name.startswith("http2_") else "dirty arbiters")
            raise ConfigError(f"config: {path} sets {name!r}: {feature} is not supported by "
                              "prefork")
        elif name in IGNORED:
            ignored.append(name)
    if ignored:
        values[IGNORED_KEY] = ignored
    return values


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
    known = set(SETTINGS_BY_NAME) | set(GUNICORN_ALIASES) | set(REFUSED) | set(IGNORED)
    unknown = sorted(name for name in table
                     if name not in known and not name.startswith(REFUSED_PREFIXES))
    if unknown:
        raise ConfigError(f"config: unknown setting {unknown[0]!r} in {path}")
    return translate_gunicorn_names(table, path)


def env_args(environ: Mapping[str, str]) -> list[list[str]]:
    """The extra argument lists from GUNICORN_CMD_ARGS then PREFORK_CMD_ARGS (later wins)."""
    lists = []
    for name in ("GUNICORN_CMD_ARGS", "PREFORK_CMD_ARGS"):
        text = environ.get(name, "").strip()
        if text:
            try:
                lists.append(shlex.split(text))
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    return lists

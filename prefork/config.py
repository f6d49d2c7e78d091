"""The settings table and the frozen, typed :class:`Config` built from it.

``SETTINGS`` is the single place an option is declared: its name, CLI flags, type, default,
validation and help text. The click command (``prefork.cli``), the keyword arguments of
``prefork.Server`` and the CLI reference in docs/ are all generated from it. Sources merge as
defaults < config file < ``GUNICORN_CMD_ARGS`` < ``PREFORK_CMD_ARGS`` < command line.

Reading configuration files and variables is ``prefork.sources``'s job.

Rule: this module raises :class:`ConfigError` naming the setting; it never prints or exits, and
reads nothing from the environment at import.

The module is over 600 lines because the table is data: one entry per option, with its help.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from prefork.errors import ConfigError
from prefork.logs.access_format import AccessFormatter
from prefork.proxy import TrustedProxies

Converter = Callable[[Any], Any]


class Setting(NamedTuple):
    """One option: how it is spelled on the command line, its type, default and meaning.

    A row of a table, so a named tuple: as a frozen dataclass it cost every start-up about
    1 ms more (0.7 to define the class, 0.2 to make the 100 rows)."""

    name: str
    flags: tuple[str, ...]
    convert: Converter
    default: Any
    help: str
    section: str
    metavar: str = ""
    multiple: bool = False
    is_flag: bool = False
    negatable: bool = False  # boolean with a --no-<name> form
    choices: tuple[str, ...] = ()
    flag_value: Any = None  # a flag that may take a value, meaning this one without (nargs="?")


# --- converters: each takes a value from any source (CLI string, config file object) -----------


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected an integer, got {value!r}") from None


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None


def _non_negative_int(value: Any) -> int:
    number = _to_int(value)
    if number < 0:
        raise ValueError(f"must be 0 or more, got {number}")
    return number


def _positive_int(value: Any) -> int:
    number = _to_int(value)
    if number < 1:
        raise ValueError(f"must be 1 or more, got {number}")
    return number


def _non_negative_float(value: Any) -> float:
    number = _to_float(value)
    if number < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return number


def _positive_float(value: Any) -> float:
    number = _to_float(value)
    if number <= 0:
        raise ValueError(f"must be more than 0, got {value}")
    return number


def _workers(value: Any) -> int:
    """``auto`` becomes 0 here and is resolved to the usable core count by ``resolve_workers``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    try:
        number = _to_int(value)
    except ValueError:
        raise ValueError(f"expected an integer or 'auto', got {value!r}") from None
    if number < 1:
        raise ValueError(f"must be 1 or more, or 'auto', got {number}")
    return number


# settings whose converter turns 'auto' into 0, resolved later from the machine
AUTO_AS_ZERO = ("workers", "max_workers")


def _max_workers(value: Any) -> int:
    """``auto`` becomes 0 here and is derived from CPUs and memory by ``max_worker_count``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    number = _to_int(value)
    if number < 1:
        raise ValueError(f"must be 1 or more, or 'auto', got {number}")
    return number


def _text(value: Any) -> str:
    return str(value)


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _choice(*choices: str) -> Converter:
    def convert(value: Any) -> str:
        text: str = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return text

    return convert


HTTP2_CLEARTEXT: Final = ("off", "prior-knowledge", "upgrade", "both")


def _http2_cleartext(value: Any) -> str:
    """gunicorn's ``http2_cleartext``; a boolean in a config file means prior knowledge or off,
    as gunicorn reads it."""
    if isinstance(value, bool):
        return "prior-knowledge" if value else "off"
    text: str = _choice(*HTTP2_CLEARTEXT)(value)
    return text


_BOOL_WORDS: Final = frozenset({"1", "true", "yes", "on", "0", "false", "no", "off"})


def _http2(value: Any) -> bool:
    """A boolean, or gunicorn's ``http_protocols`` list ("h2, h1"): HTTP/2 is served when h2
    is in it. As in gunicorn, a list without h1 still serves HTTP/1.1 to a client that does not
    choose h2."""
    if isinstance(value, list | tuple):
        parts = [str(part) for part in value]
    elif isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
        parts = value.split(",")
    else:
        return _to_bool(value)
    offered = {part.strip().lower() for part in parts if part.strip()}
    unknown = sorted(offered - {"h1", "h2"})
    if unknown:
        raise ValueError(f"unknown protocol {unknown[0]!r} (http_protocols lists h1 and h2)")
    return "h2" in offered


def _int_between(low: int, high: int) -> Converter:
    def convert(value: Any) -> int:
        number = _to_int(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {number}")
        return number

    return convert


def _forwarded_ips(value: Any) -> str:
    text = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
    TrustedProxies.parse(text)  # raises ConfigError naming the setting
    return text


def _proxy_ips(value: Any) -> str:
    try:
        return _forwarded_ips(value)
    except ConfigError as exc:  # its message names forwarded_allow_ips; this is another setting
        raise ValueError(str(exc).partition(": ")[2]) from None


def _proxy_protocol(value: Any) -> bool:
    """A bool, or gunicorn 24's mode names: v1, v2 and auto all mean on (both are accepted)."""
    if isinstance(value, str) and value.strip().lower() in {"auto", "v1", "v2"}:
        return True
    return _to_bool(value)


WORKER_CLASSES = {
    "sync": "wsgi", "gthread": "wsgi", "asgi": "asgi",
    "uvicorn.workers.uvicornworker": "asgi", "uvicorn_worker.uvicornworker": "asgi",
    "uvicorn.workers.uvicornh11worker": "asgi", "uvicorn_worker.uvicornh11worker": "asgi",
}
REFUSED_WORKER_CLASSES = ("gevent", "eventlet", "tornado")


def _worker_class(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    key = text.lower().replace("gunicorn.workers.", "").replace("ggevent.", "")
    key = key.replace("sync.syncworker", "sync").replace("gthread.threadworker", "gthread")
    if key in WORKER_CLASSES:
        return key
    if any(key.startswith(name) or f".{name}" in key for name in REFUSED_WORKER_CLASSES):
        raise ValueError(f"{text!r} is not supported: prefork workers run an asyncio event "
                         "loop (use -k sync or gthread for WSGI, asgi for ASGI)")
    if _DOTTED_PATH.fullmatch(text):
        return text  # a worker class of the app's own, checked when imported (prefork.workerclass)
    raise ValueError(f"unknown worker class {text!r} (sync, gthread, asgi, "
                     "uvicorn.workers.UvicornWorker or a subclass of it)")


_DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _umask(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().lower()
        number = int(text, 8) if text.startswith("0") and text not in ("0",) else int(text, 0)
    if not 0 <= number <= 0o777:
        raise ValueError(f"must be between 0 and 0o777, got {value!r}")
    return number


def _optional_mapping(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"must be a dict, got {type(value).__name__}")
    return value


def _cert_reqs(value: Any) -> int:
    number = _to_int(value)
    if number not in (0, 1, 2):
        raise ValueError(f"must be 0 (none), 1 (optional) or 2 (required), got {number}")
    return number


def _access_format(value: Any) -> str:
    text = str(value)
    try:
        AccessFormatter(text)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("access_log_format: ")) from None
    return text


def _optional_fd(value: Any) -> int | None:
    return None if value is None else _non_negative_int(value)


def _hook(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ValueError(f"must be a function, got {type(value).__name__}")
    return value


def _optional_address(value: Any) -> str | None:
    """HOST:PORT (for --metrics-bind and --statsd-host); checked here so a typo fails at start."""
    text = _optional_text(value)
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if not host.strip("[]"):
        raise ValueError(f"expected HOST:PORT with a host, got {text!r}")
    return text


def _health_path(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and (not text.startswith("/") or any(c in text for c in " ?#")):
        raise ValueError(f"must be a path starting with '/' (no query), got {text!r}")
    return text


def _file_mode(value: Any) -> int:
    number = _umask(value)
    if number & 0o077 and number & 0o700 == 0:
        raise ValueError(f"the owner needs access, got {oct(number)}")
    return number


_log_level = _choice("critical", "error", "warning", "info", "debug")


DISPATCH_MODES = ("reuseport", "roundrobin", "shared")
INTERFACES = ("auto", "asgi", "asgi2", "wsgi")
RELOAD_ENGINES = ("auto", "poll", "inotify")

SETTINGS: tuple[Setting, ...] = (
    # -- server socket --------------------------------------------------------------------------
    Setting("bind", ("-b", "--bind"), _string_list, ("127.0.0.1:8000",),
            "Address to listen on: HOST:PORT, [IPV6]:PORT, tcp://HOST:PORT, unix:PATH or "
            "fd://N (an inherited listening socket). Repeatable. "
            "Port 0 picks a free port.", "Server socket", metavar="ADDRESS", multiple=True),
    Setting("fd", ("--fd",), _optional_fd, None,
            "Serve on this already-open listening socket (as uvicorn's --fd); replaces the "
            "default bind.", "Server socket", metavar="FD"),
    Setting("backlog", ("--backlog",), _positive_int, 2048,
            "Maximum number of pending connections queued by the kernel per listener.",
            "Server socket", metavar="INT"),
    Setting("dispatch", ("--dispatch",), _choice(*DISPATCH_MODES), "reuseport",
            "How connections reach workers: one SO_REUSEPORT listener per worker (reuseport), "
            "the arbiter accepts and hands each connection to the next worker (roundrobin), or "
            "every worker accepts on one listener (shared).", "Server socket",
            choices=DISPATCH_MODES),
    # -- worker processes -----------------------------------------------------------------------
    Setting("workers", ("-w", "--workers"), _workers, 1,
            "Number of worker processes, or 'auto' for one per usable core.", "Worker processes",
            metavar="N|auto"),
    Setting("max_workers", ("--max-workers",), _max_workers, "auto",
            "The most workers --workers, 'prefork ctl scale' and TTIN may ask for; more is "
            "refused. 'auto': 4 per usable CPU, at least 16, and no more than one per 32 MiB "
            "of the memory the server may use (MemTotal or its cgroup limit).",
            "Worker processes", metavar="N|auto"),
    Setting("worker_class", ("-k", "--worker-class"), _worker_class, None,
            "gunicorn's worker class, mapped to an interface: sync and gthread serve WSGI; "
            "asgi, uvicorn.workers.UvicornWorker and uvicorn_worker.UvicornWorker serve ASGI. "
            "gevent, eventlet and tornado are refused.", "Worker processes", metavar="CLASS"),
    Setting("worker_connections", ("--worker-connections",), _positive_int, 1000,
            "Most simultaneous client connections per worker.", "Worker processes",
            metavar="INT"),
    Setting("limit_concurrency", ("--limit-concurrency",), _non_negative_int, 0,
            "Most requests in flight per worker; a request past it gets 503 and the connection "
            "closes, without reaching the app (uvicorn's option). 0 means no limit.",
            "Worker processes", metavar="INT"),
    Setting("interface", ("--interface",), _choice(*INTERFACES), "auto",
            "Application interface; 'auto' detects ASGI 3, ASGI 2 or WSGI.", "Worker processes",
            choices=INTERFACES),
    Setting("http", ("--http",), _choice("auto", "httptools", "h11"), "auto",
            "HTTP/1.1 parser: httptools (fast) or h11 (pure Python); auto prefers httptools.",
            "Worker processes", choices=("auto", "httptools", "h11")),
    Setting("threads", ("--threads",), _positive_int, 1,
            "WSGI apps: with 1 the app is called on the worker's event-loop thread, one request "
            "at a time (as gunicorn's sync worker); with N > 1 it runs in a pool of N threads.",
            "Worker processes", metavar="N"),
    Setting("timeout", ("-t", "--timeout"), _non_negative_float, 30.0,
            "A worker whose event loop is silent for this many seconds is aborted and replaced "
            "(0 disables the heartbeat check).", "Worker processes", metavar="SECONDS"),
    Setting("graceful_timeout", ("--graceful-timeout",), _non_negative_float, 30.0,
            "On graceful stop, workers get this long to finish in-flight requests before they are "
            "killed.", "Worker processes", metavar="SECONDS"),
    Setting("keepalive", ("--keep-alive", "--keepalive"), _non_negative_float, 2.0,
            "Seconds an idle keep-alive connection is held open.", "Worker processes",
            metavar="SECONDS"),
    Setting("max_requests", ("--max-requests",), _non_negative_int, 0,
            "Replace a worker after it has served this many requests (0 = never). The "
            "replacement is started before the old worker drains.", "Worker processes",
            metavar="INT"),
    Setting("max_requests_jitter", ("--max-requests-jitter",), _non_negative_int, 0,
            "Add a random 0..N to each worker's max-requests so workers do not recycle together.",
            "Worker processes", metavar="INT"),
    Setting("max_worker_lifetime", ("--max-worker-lifetime",), _non_negative_float, 0.0,
            "Replace a worker after it has lived this many seconds (0 = never); rolling, as "
            "--max-requests.", "Worker processes", metavar="SECONDS"),
    Setting("max_worker_lifetime_jitter", ("--max-worker-lifetime-jitter",),
            _non_negative_float, 0.0,
            "Add a random 0..N seconds to each worker's lifetime limit.", "Worker processes",
            metavar="SECONDS"),
    Setting("max_worker_memory", ("--max-worker-memory",), _non_negative_float, 0.0,
            "Replace a worker whose resident memory stays above this many MB for three samples "
            "in a row (sampled every second; 0 = never); rolling, as --max-requests.",
            "Worker processes", metavar="MB"),
    Setting("max_worker_memory_jitter", ("--max-worker-memory-jitter",), _non_negative_float,
            0.0,
            "Add a random 0..N MB to each worker's memory limit.", "Worker processes",
            metavar="MB"),
    Setting("preload_app", ("--preload",), _to_bool, False,
            "Import the application in the arbiter before forking workers.", "Worker processes",
            is_flag=True),
    Setting("kill_worker_group", ("--kill-worker-group",), _to_bool, False,
            "Put each worker in its own process group and, when the worker stops, end the "
            "processes the app started in it (SIGTERM; SIGKILL if the worker was killed).",
            "Worker processes", is_flag=True),
    # -- restart policy -------------------------------------------------------------------------
    Setting("restart_backoff_base", ("--restart-backoff-base",), _non_negative_float, 0.5,
            "After a worker crash the slot is refilled at once; each further crash of that slot "
            "waits twice as long, starting from this many seconds.", "Restart policy",
            metavar="SECONDS"),
    Setting("restart_backoff_cap", ("--restart-backoff-cap",), _non_negative_float, 30.0,
            "Longest wait before refilling a crashed slot.", "Restart policy", metavar="SECONDS"),
    Setting("restart_backoff_reset", ("--restart-backoff-reset",), _non_negative_float, 30.0,
            "A worker that lived this long resets its slot's backoff.", "Restart policy",
            metavar="SECONDS"),
    Setting("breaker_threshold", ("--breaker-threshold",), _positive_int, 5,
            "This many worker boot failures (exits before reporting ready) within "
            "--breaker-window open the circuit breaker: no more forks until the cool-down "
            "passes. With no live worker the server then exits.",
            "Restart policy", metavar="INT"),
    Setting("breaker_window", ("--breaker-window",), _positive_float, 60.0,
            "Window in which crashes are counted for the circuit breaker.", "Restart policy",
            metavar="SECONDS"),
    Setting("breaker_cooldown", ("--breaker-cooldown",), _positive_float, 30.0,
            "After this long an open breaker lets one trial worker start.", "Restart policy",
            metavar="SECONDS"),
    # -- application ----------------------------------------------------------------------------
    Setting("factory", ("--factory",), _to_bool, False,
            "Treat APP as a factory: call it with no arguments to get the application.",
            "Application", is_flag=True),
    Setting("wsgi_app", (), _optional_text, None,
            "The application (module:attribute) when APP is not given on the command line.",
            "Application", metavar="APP"),
    Setting("raw_env", ("-e", "--env"), _string_list, (),
            "Set an environment variable (NAME=VALUE) in the server and its workers. "
            "Repeatable.", "Application", metavar="NAME=VALUE", multiple=True),
    Setting("chdir", ("--chdir",), _optional_text, None,
            "Change to this directory before loading the application.", "Application",
            metavar="DIR"),
    Setting("pythonpath", ("--pythonpath",), _optional_text, None,
            "Comma-separated directories put at the front of sys.path (relative ones from "
            "--chdir) before the application is imported.", "Application", metavar="DIRS"),
    Setting("lifespan", ("--lifespan",), _choice("auto", "on", "off"), "auto",
            "ASGI lifespan events: on (startup failure stops the worker), off, or auto.",
            "Application", choices=("auto", "on", "off")),
    Setting("root_path", ("--root-path",), _text, "",
            "Path prefix the application is mounted under (ASGI root_path, WSGI SCRIPT_NAME).",
            "Application", metavar="PATH"),
    # -- HTTP -----------------------------------------------------------------------------------
    Setting("limit_request_line", ("--limit-request-line",), _positive_int, 4094,
            "Longest request line accepted, in bytes (414 above it).", "HTTP", metavar="BYTES"),
    Setting("limit_request_fields", ("--limit-request-fields",), _positive_int, 100,
            "Most header fields accepted in a request (431 above it).", "HTTP", metavar="INT"),
    Setting("limit_request_field_size", ("--limit-request-field_size",
                                         "--limit-request-field-size"), _positive_int, 8190,
            "Longest header field line accepted, in bytes (431 above it).", "HTTP",
            metavar="BYTES"),
    Setting("limit_request_body", ("--limit-request-body",), _non_negative_int, 0,
            "Largest request body accepted, in bytes (413 above it); 0 means no limit.", "HTTP",
            metavar="BYTES"),
    Setting("headers_timeout", ("--headers-timeout",), _positive_float, 10.0,
            "Seconds a client has to send a whole request head once it started (408 after).",
            "HTTP", metavar="SECONDS"),
    Setting("body_timeout", ("--body-timeout",), _positive_float, 30.0,
            "Seconds a client may pause between request body bytes (408 after).", "HTTP",
            metavar="SECONDS"),
    Setting("send_timeout", ("--send-timeout",), _positive_float, 30.0,
            "Seconds a response write may make no progress (the client reads nothing) before "
            "the connection is aborted and its buffers freed (nginx's send_timeout).", "HTTP",
            metavar="SECONDS"),
    Setting("ws", ("--ws",), _choice("auto", "websockets", "none"), "auto",
            "WebSocket support for ASGI apps: websockets (the library's sans-I/O protocol), "
            "none (upgrade requests reach the app as plain HTTP), or auto.", "WebSocket",
            choices=("auto", "websockets", "none")),
    Setting("ws_max_size", ("--ws-max-size",), _positive_int, 16 * 1024 * 1024,
            "Largest WebSocket message accepted, in bytes (close code 1009 above it).",
            "WebSocket", metavar="BYTES"),
    Setting("ws_ping_interval", ("--ws-ping-interval",), _non_negative_float, 20.0,
            "Seconds between keep-alive pings on an idle WebSocket (0 disables).", "WebSocket",
            metavar="SECONDS"),
    Setting("ws_ping_timeout", ("--ws-ping-timeout",), _non_negative_float, 20.0,
            "Seconds to wait for a pong before closing the WebSocket (0 disables).", "WebSocket",
            metavar="SECONDS"),
    Setting("ws_per_message_deflate", ("--ws-per-message-deflate",), _to_bool, True,
            "Offer permessage-deflate compression to WebSocket clients.", "WebSocket",
            is_flag=True, negatable=True),
    Setting("http2", ("--http2",), _http2, False,
            "Serve HTTP/2 as well as HTTP/1.1: over TLS when the client picks h2 by ALPN, and "
            "over cleartext as --http2-cleartext says. gunicorn's http_protocols with h2 in "
            "its list turns it on.", "HTTP/2", is_flag=True, negatable=True),
    Setting("http2_cleartext", ("--http2-cleartext",), _http2_cleartext, "both",
            "How HTTP/2 is reached without TLS when --http2 is on: prior-knowledge (the "
            "connection opens with the HTTP/2 preface), upgrade (an HTTP/1.1 request with "
            "Upgrade: h2c), both, or off.", "HTTP/2", choices=HTTP2_CLEARTEXT),
    Setting("http2_engine", ("--http2-engine",), _choice("native", "h2"), "native",
            "What speaks HTTP/2: native (prefork's own frame layer, flow control and HPACK, "
            "compiled with the request path) or h2 (python-hyper's h2 library).", "HTTP/2",
            choices=("native", "h2")),
    Setting("http2_max_concurrent_streams",
            ("--h2-max-concurrent-streams", "--http2-max-concurrent-streams"),
            _int_between(1, 2**31 - 1), 100,
            "Streams one HTTP/2 connection may have open at once (sent in SETTINGS; a stream "
            "past it is refused).", "HTTP/2", metavar="INT"),
    Setting("http2_initial_window_size", ("--http2-initial-window-size",),
            _int_between(1, 2**31 - 1), 65535,
            "Request body bytes a client may send on one HTTP/2 stream before the app reads "
            "them (the stream's flow-control window).", "HTTP/2", metavar="BYTES"),
    Setting("http2_max_frame_size", ("--http2-max-frame-size",),
            _int_between(16384, 16777215), 16384,
            "Largest HTTP/2 frame payload accepted, in bytes.", "HTTP/2", metavar="BYTES"),
    Setting("http2_max_header_list_size", ("--http2-max-header-list-size",), _positive_int,
            65536,
            "Largest decoded HTTP/2 header list accepted, in bytes (HPACK's measure: each "
            "field counts its name, its value and 32); a larger one ends the connection.",
            "HTTP/2", metavar="BYTES"),
    Setting("proxy_headers", ("--proxy-headers",), _to_bool, True,
            "Take the client address, scheme and host from X-Forwarded-For/-Proto/-Host or "
            "RFC 7239 Forwarded, when the peer is in --forwarded-allow-ips.", "Proxies",
            is_flag=True, negatable=True),
    Setting("forwarded_allow_ips", ("--forwarded-allow-ips",), _forwarded_ips,
            "127.0.0.1,::1",
            "Comma-separated addresses or CIDR networks of proxies whose forwarding headers are "
            "trusted, or '*' for any peer (only behind a proxy that overwrites them).",
            "Proxies", metavar="ADDRESSES"),
    Setting("proxy_protocol", ("--proxy-protocol",), _proxy_protocol, False,
            "Expect a PROXY protocol header (v1 or v2, as HAProxy and nginx send) before the "
            "first request from peers in --proxy-allow-ips, and take the client address from "
            "it; such a header from any other peer is refused. gunicorn's modes v1, v2 and "
            "auto all turn it on, off turns it off.", "Proxies", metavar="[MODE]",
            flag_value="auto"),
    Setting("proxy_allow_ips", ("--proxy-allow-ips", "--proxy-allow-from"), _proxy_ips,
            "127.0.0.1,::1",
            "Comma-separated addresses or CIDR networks of load balancers that must send a "
            "PROXY protocol header, or '*' for any peer (with --proxy-protocol).", "Proxies",
            metavar="ADDRESSES"),
    Setting("server_header", ("--server-header",), _to_bool, True,
            "Send a 'Server: prefork' header when the app sets none.", "HTTP", is_flag=True,
            negatable=True),
    Setting("date_header", ("--date-header",), _to_bool, True,
            "Send a 'Date' header when the app sets none.", "HTTP", is_flag=True, negatable=True),
    Setting("http1_early_hints", ("--http1-early-hints",), _to_bool, False,
            "Offer ASGI apps the early hints extension on HTTP/1.1 as well: their "
            "'103 Early Hints' reach HTTP/1.1 clients (some older clients take a 103 for the "
            "final response; HTTP/1.0 clients never get one).", "HTTP", is_flag=True),
    # -- process and logging --------------------------------------------------------------------
    Setting("user", ("-u", "--user"), _optional_text, None,
            "Run as this user (name or uid) once the sockets are bound.", "Process",
            metavar="USER"),
    Setting("group", ("-g", "--group"), _optional_text, None,
            "Run as this group (name or gid) once the sockets are bound.", "Process",
            metavar="GROUP"),
    Setting("umask", ("-m", "--umask"), _umask, 0,
            "File mode creation mask of the server (octal, as 0o22 or 022).", "Process",
            metavar="INT"),
    Setting("proc_name", ("-n", "--name"), _optional_text, None,
            "The name in process titles: ps shows 'prefork: arbiter [NAME]' and 'prefork: "
            "worker [NAME]' with setproctitle installed (NAME is the app as given when unset); "
            "top shows 'NAME: worker' ('prefork: worker' when unset).", "Process",
            metavar="NAME"),
    Setting("pidfile", ("-p", "--pid"), _optional_text, None,
            "Write the arbiter's PID to this file.", "Process", metavar="FILE"),
    Setting("loglevel", ("--log-level",), _log_level, "info",
            "Error log level: critical, error, warning, info or debug.", "Logging",
            metavar="LEVEL"),
    Setting("errorlog", ("--error-logfile", "--log-file"), _text, "-",
            "Where the error log goes: a file path, or '-' for stderr.", "Logging",
            metavar="FILE"),
    Setting("on_starting", (), _hook, None,
            "Called before the arbiter binds its sockets. Arguments: server.",
            "Server hooks", metavar="CALLABLE"),
    Setting("on_reload", (), _hook, None,
            "Called on SIGHUP before workers are replaced. Arguments: server.",
            "Server hooks", metavar="CALLABLE"),
    Setting("when_ready", (), _hook, None,
            "Called once the sockets are bound, before workers are forked. Arguments: server.",
            "Server hooks", metavar="CALLABLE"),
    Setting("pre_fork", (), _hook, None,
            "Called in the arbiter just before a worker is forked. Arguments: server, worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("post_fork", (), _hook, None,
            "Called in the worker just after it was forked. Arguments: server, worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("post_worker_init", (), _hook, None,
            "Called in the worker once the application is loaded. Arguments: worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("worker_int", (), _hook, None,
            "Called in the worker when it gets SIGINT or SIGQUIT. Arguments: worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("worker_abort", (), _hook, None,
            "Called in the worker when it gets SIGABRT (heartbeat timeout). Arguments: worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("pre_exec", (), _hook, None,
            "Called in the new arbiter's process just before the USR2 exec. Arguments: server.",
            "Server hooks", metavar="CALLABLE"),
    Setting("pre_request", (), _hook, None,
            "Called in the worker before each request reaches the app. Arguments: worker, req.",
            "Server hooks", metavar="CALLABLE"),
    Setting("post_request", (), _hook, None,
            "Called in the worker after each response. Arguments: worker, req, environ, resp.",
            "Server hooks", metavar="CALLABLE"),
    Setting("child_exit", (), _hook, None,
            "Called in the arbiter after a worker exited. Arguments: server, worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("worker_exit", (), _hook, None,
            "Called in the worker just before it exits. Arguments: server, worker.",
            "Server hooks", metavar="CALLABLE"),
    Setting("nworkers_changed", (), _hook, None,
            "Called when the worker count changes. Arguments: server, new_value, old_value.",
            "Server hooks", metavar="CALLABLE"),
    Setting("on_exit", (), _hook, None,
            "Called just before the arbiter exits. Arguments: server.",
            "Server hooks", metavar="CALLABLE"),
    Setting("on_message", (), _hook, None,
            "Called in the arbiter for each prefork.messages.send(obj) from app code. Arguments: "
            "server, worker, obj.", "Server hooks", metavar="CALLABLE"),
    Setting("on_broadcast", (), _hook, None,
            "Called in every worker for each prefork.messages.broadcast(obj). Arguments: worker, "
            "obj.", "Server hooks", metavar="CALLABLE"),
    # -- operations -----------------------------------------------------------------------------
    Setting("control_socket", ("--control-socket",), _optional_text, None,
            "Unix socket for 'prefork ctl' (status, reload, scale, recycle, stop). Default: "
            "$XDG_RUNTIME_DIR/prefork.ctl, or /tmp/prefork-UID/prefork.ctl.", "Operations",
            metavar="PATH"),
    Setting("control_socket_disable", ("--no-control-socket",), _to_bool, False,
            "Do not open the control socket.", "Operations", is_flag=True),
    Setting("control_socket_mode", ("--control-socket-mode",), _file_mode, 0o600,
            "Permissions of the control socket (octal); its owner is the server's user.",
            "Operations", metavar="MODE"),
    Setting("metrics_bind", ("--metrics-bind",), _optional_address, None,
            "Serve Prometheus metrics, summed over workers, from the arbiter on HOST:PORT "
            "(path /metrics). Off when unset.", "Operations", metavar="HOST:PORT"),
    Setting("statsd_host", ("--statsd-host",), _optional_address, None,
            "Send StatsD metrics (gunicorn's names) over UDP to HOST:PORT. Off when unset.",
            "Operations", metavar="HOST:PORT"),
    Setting("statsd_prefix", ("--statsd-prefix",), _text, "",
            "Prefix for StatsD metric names (a dot is added).", "Operations", metavar="PREFIX"),
    Setting("dogstatsd_tags", ("--dogstatsd-tags",), _text, "",
            "Comma-separated DogStatsD tags added to every StatsD metric.", "Operations",
            metavar="TAGS"),
    Setting("health_path", ("--health-path",), _health_path, None,
            "Answer GET on this path in the worker, without calling the app: 200 while serving, "
            "503 once draining (e.g. /_prefork/health). Off when unset.", "Operations",
            metavar="PATH"),
    Setting("shutdown_delay", ("--shutdown-delay",), _non_negative_float, 0.0,
            "On SIGTERM, fail the health path at once and keep serving for this many seconds "
            "before the graceful stop (time for a load balancer to stop routing here).",
            "Operations", metavar="SECONDS"),
    Setting("accesslog", ("--access-logfile",), _optional_text, None,
            "Where the access log goes: a file path, or '-' for stdout. Off when unset, as in "
            "gunicorn.", "Logging", metavar="FILE"),
    Setting("access_log_format", ("--access-logformat", "--access-log-format"), _access_format,
            '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
            "Access log line: gunicorn's atoms (h l u t r m U q H s b B f a T D M L p, "
            "{header}i, {header}o, {variable}e), or 'json' for one JSON object per line.",
            "Logging", metavar="FORMAT"),
    Setting("log_format", ("--log-format",), _choice("text", "json"), "text",
            "Error log and access log lines: text, or json (one object per line with stable "
            "field names; the access log adds the client's X-Request-ID).", "Logging",
            choices=("text", "json")),
    Setting("capture_output", ("--capture-output",), _to_bool, False,
            "Send the workers' stdout and stderr to the error log file.", "Logging",
            is_flag=True),
    Setting("logconfig", ("--log-config",), _optional_text, None,
            "A logging configuration file (logging.config.fileConfig format); it replaces "
            "prefork's own logging set-up.", "Logging", metavar="FILE"),
    Setting("logconfig_dict", (), _optional_mapping, None,
            "A logging.config.dictConfig dictionary (config file only).", "Logging",
            metavar="DICT"),
    Setting("certfile", ("--certfile",), _optional_text, None,
            "TLS certificate file (PEM); serving TLS needs it and --keyfile.", "TLS",
            metavar="FILE"),
    Setting("keyfile", ("--keyfile",), _optional_text, None,
            "TLS private key file (PEM).", "TLS", metavar="FILE"),
    Setting("ca_certs", ("--ca-certs",), _optional_text, None,
            "CA certificates (PEM) to verify client certificates with.", "TLS",
            metavar="FILE"),
    Setting("cert_reqs", ("--cert-reqs",), _cert_reqs, 0,
            "Client certificates: 0 none, 1 optional, 2 required (ssl.CERT_*).", "TLS",
            metavar="INT"),
    Setting("ciphers", ("--ciphers",), _optional_text, None,
            "OpenSSL cipher list for TLS 1.2 and older (TLS 1.3 suites are OpenSSL's own).",
            "TLS", metavar="CIPHERS"),
    Setting("reuse_port", ("--reuse-port",), _to_bool, False,
            "gunicorn's flag: the same as --dispatch reuseport (prefork's default).",
            "Server socket", is_flag=True),
    Setting("sendfile", ("--sendfile",), _to_bool, True,
            "Send file bodies with sendfile(2) (wsgi.file_wrapper, ASGI pathsend and "
            "zerocopysend; TLS connections always read and write them).", "HTTP",
            is_flag=True, negatable=True),
    # -- development ----------------------------------------------------------------------------
    Setting("reload", ("--reload",), _to_bool, False,
            "Development: watch the source and replace the workers (rolling, as on HUP) when a "
            "watched file changes; a change that does not import keeps the old workers. Not "
            "with --preload.", "Development", is_flag=True),
    Setting("reload_dirs", ("--reload-dir",), _string_list, (),
            "Directory to watch with --reload, recursively. Repeatable. Default: the current "
            "directory.", "Development", metavar="DIR", multiple=True),
    Setting("reload_includes", ("--reload-include",), _string_list, (),
            "File name pattern whose changes reload, beside the default *.py. Repeatable.",
            "Development", metavar="PATTERN", multiple=True),
    Setting("reload_excludes", ("--reload-exclude",), _string_list, (),
            "File or directory name pattern (or a directory) whose changes never reload, beside "
            "the defaults .*, .py[cod], .sw.* and ~*. Repeatable.", "Development",
            metavar="PATTERN", multiple=True),
    Setting("reload_extra_files", ("--reload-extra-file",), _string_list, (),
            "A file (or a glob pattern) whose changes reload whatever its name, inside the "
            "watched directories or not (templates, settings). Repeatable.", "Development",
            metavar="FILE", multiple=True),
    Setting("reload_engine", ("--reload-engine",), _choice(*RELOAD_ENGINES), "auto",
            "How --reload learns of changes (watchfiles): auto (the kernel's notifications, "
            "inotify on Linux; polling under WSL or with WATCHFILES_FORCE_POLLING set), "
            "inotify (notifications, always) or poll (scan every 300 ms: network and "
            "container-mounted file systems, where notifications do not come).",
            "Development", choices=RELOAD_ENGINES),
    Setting("check_config", ("--check-config",), _to_bool, False,
            "Check the configuration and that the application loads, then exit (0 if fine).",
            "Configuration", is_flag=True),
    Setting("print_config", ("--print-config",), _to_bool, False,
            "Print the resolved configuration and exit.", "Configuration", is_flag=True),
    Setting("config", ("-c", "--config"), _optional_text, None,
            "Configuration file: Python (settings as module-level names, as gunicorn.conf.py) "
            "or TOML; python:MODULE reads an importable module, as gunicorn does.",
            "Configuration", metavar="FILE"),
)

SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, init=False)
class Config:
    """The resolved settings; built only through :meth:`from_mapping` so every value is checked.

    ``__init__`` is written out: generating a frozen dataclass's for some 100 fields costs every
    start-up about 6 ms. It takes every setting by name, and only those."""

    bind: tuple[str, ...]
    fd: int | None
    backlog: int
    dispatch: str
    workers: int
    max_workers: int
    worker_class: str | None
    worker_connections: int
    limit_concurrency: int
    interface: str
    http: str
    threads: int
    timeout: float
    graceful_timeout: float
    keepalive: float
    max_requests: int
    max_requests_jitter: int
    max_worker_lifetime: float
    max_worker_lifetime_jitter: float
    max_worker_memory: float
    max_worker_memory_jitter: float
    preload_app: bool
    kill_worker_group: bool
    restart_backoff_base: float
    restart_backoff_cap: float
    restart_backoff_reset: float
    breaker_threshold: int
    breaker_window: float
    breaker_cooldown: float
    factory: bool
    wsgi_app: str | None
    raw_env: tuple[str, ...]
    chdir: str | None
    pythonpath: str | None
    lifespan: str
    root_path: str
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    limit_request_body: int
    headers_timeout: float
    body_timeout: float
    send_timeout: float
    ws: str
    ws_max_size: int
    ws_ping_interval: float
    ws_ping_timeout: float
    ws_per_message_deflate: bool
    http2: bool
    http2_cleartext: str
    http2_engine: str
    http2_max_concurrent_streams: int
    http2_initial_window_size: int
    http2_max_frame_size: int
    http2_max_header_list_size: int
    proxy_headers: bool
    forwarded_allow_ips: str
    proxy_protocol: bool
    proxy_allow_ips: str
    server_header: bool
    date_header: bool
    http1_early_hints: bool
    user: str | None
    group: str | None
    umask: int
    proc_name: str | None
    pidfile: str | None
    loglevel: str
    errorlog: str
    accesslog: str | None
    access_log_format: str
    log_format: str
    capture_output: bool
    logconfig: str | None
    logconfig_dict: dict[str, Any] | None
    certfile: str | None
    keyfile: str | None
    ca_certs: str | None
    cert_reqs: int
    ciphers: str | None
    reuse_port: bool
    sendfile: bool
    reload: bool
    reload_dirs: tuple[str, ...]
    reload_includes: tuple[str, ...]
    reload_excludes: tuple[str, ...]
    reload_extra_files: tuple[str, ...]
    reload_engine: str
    check_config: bool
    print_config: bool
    config: str | None
    on_starting: Callable[..., Any] | None
    on_reload: Callable[..., Any] | None
    when_ready: Callable[..., Any] | None
    pre_fork: Callable[..., Any] | None
    post_fork: Callable[..., Any] | None
    post_worker_init: Callable[..., Any] | None
    worker_int: Callable[..., Any] | None
    worker_abort: Callable[..., Any] | None
    pre_exec: Callable[..., Any] | None
    pre_request: Callable[..., Any] | None
    post_request: Callable[..., Any] | None
    child_exit: Callable[..., Any] | None
    worker_exit: Callable[..., Any] | None
    nworkers_changed: Callable[..., Any] | None
    on_exit: Callable[..., Any] | None
    on_message: Callable[..., Any] | None
    on_broadcast: Callable[..., Any] | None
    control_socket: str | None
    control_socket_disable: bool
    control_socket_mode: int
    metrics_bind: str | None
    statsd_host: str | None
    statsd_prefix: str
    dogstatsd_tags: str
    health_path: str | None
    shutdown_delay: float

    def __init__(self, **values: Any) -> None:
        if values.keys() != SETTINGS_BY_NAME.keys():
            missing = sorted(SETTINGS_BY_NAME.keys() - values.keys())
            unknown = sorted(values.keys() - SETTINGS_BY_NAME.keys())
            raise TypeError(f"Config() takes every setting by name; missing {missing}, "
                            f"unknown {unknown}")
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: the dataclass's __setattr__ refuses

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Defaults overlaid with ``values``; unknown names and bad values raise ConfigError."""
        resolved: dict[str, Any] = {}
        for name in values:
            if name not in SETTINGS_BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
        for setting in SETTINGS:
            raw = values.get(setting.name, setting.default)
            try:
                resolved[setting.name] = setting.convert(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{setting.name}: {exc}") from None
        config = cls(**resolved)
        config.validate()
        return config

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed, checked like the original."""
        merged = dataclasses.asdict(self)
        for name in AUTO_AS_ZERO:  # the resolved form of 'auto' is not a value a user may give
            if merged[name] == 0:
                merged[name] = "auto"
        merged.update(changes)
        return Config.from_mapping(merged)

    def validate(self) -> None:
        """Checks that involve more than one setting."""
        if self.restart_backoff_cap < self.restart_backoff_base:
            raise ConfigError("restart_backoff_cap must be >= restart_backoff_base")
        if not self.bind:
            raise ConfigError("bind: at least one address is required")
        if self.workers > 1 and self.workers > self.max_worker_count():
            raise ConfigError(f"workers: {self.workers} is more than max_workers "
                              f"({self.describe_max_workers()}); raise --max-workers")
        for item in self.raw_env:
            if "=" not in item or item.startswith("="):
                raise ConfigError(f"raw_env: {item!r} is not NAME=VALUE")
        if self.keyfile and not self.certfile:
            raise ConfigError("certfile: --keyfile was given without --certfile")
        if (self.ca_certs or self.cert_reqs) and not self.certfile:
            raise ConfigError("certfile: client certificate settings need --certfile")
        if self.reload and self.preload_app:
            # the workers would fork from the arbiter's copy of the app, never the edited one
            raise ConfigError("reload: not with preload_app (--preload): the workers would "
                              "keep the code the arbiter imported")
        if self.proxy_protocol and self.certfile:
            # the header precedes the TLS handshake, which the loop's TLS transport runs before
            # any byte reaches the protocol: terminate TLS at the balancer instead
            raise ConfigError("proxy_protocol: not supported with --certfile (TLS)")

    def listen_addresses(self) -> tuple[str, ...]:
        """``bind``, with ``--fd N`` as ``fd://N`` in place of the default address."""
        if self.fd is None:
            return self.bind
        default = SETTINGS_BY_NAME["bind"].default
        return (f"fd://{self.fd}", *(address for address in self.bind if address not in default))

    def app_interface(self) -> str:
        """``interface``, or what gunicorn's ``worker_class`` implies when it is ``auto``."""
        if self.interface == "auto" and self.worker_class:
            # a dotted path is a subclass of uvicorn's worker (prefork.workerclass checks it)
            return WORKER_CLASSES.get(self.worker_class, "asgi")
        return self.interface

    def dispatch_mode(self) -> str:
        """``dispatch``; gunicorn's ``--reuse-port`` asks for ``reuseport``."""
        return "reuseport" if self.reuse_port else self.dispatch

    def access_format(self) -> str:
        """``access_log_format``; ``json`` when --log-format json leaves it at its default."""
        if self.log_format == "json" and (
                self.access_log_format == SETTINGS_BY_NAME["access_log_format"].default):
            return "json"
        return self.access_log_format

    def worker_count(self) -> int:
        """The number of workers to run: ``workers``, or the usable cores for ``auto``."""
        return self.workers or usable_cpu_count()


    def max_worker_count(self) -> int:
        """The most workers to run: ``max_workers``, or derived from CPUs and memory."""
        if self.max_workers:
            return self.max_workers
        from prefork.system.capacity import (
            max_workers_auto,  # /proc and cgroup files, read only here
        )

        return max_workers_auto()[0]

    def describe_max_workers(self) -> str:
        """``16, from 2 CPUs, 24151 MiB`` or ``8, --max-workers``: for refusals."""
        if self.max_workers:
            return f"{self.max_workers}, --max-workers"
        from prefork.system.capacity import max_workers_auto

        count, source = max_workers_auto()
        return f"{count}, from {source}"


def usable_cpu_count() -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (containers);
    at least 1. ``prefork.system.cpus`` explains the sources."""
    from prefork.system.cpus import usable_cpus  # cgroup files: only read for ``--workers auto``

    return usable_cpus().count


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; ``None`` and empty repeatable values mean "not given"."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            if value is None or (SETTINGS_BY_NAME.get(name) and _is_empty_multiple(name, value)):
                continue
            merged[name] = value
    return merged


def _is_empty_multiple(name: str, value: Any) -> bool:
    return SETTINGS_BY_NAME[name].multiple and isinstance(value, Iterable) and not value

"""The error log: one format for the arbiter and the workers, reopened on SIGUSR1.

Lines look like gunicorn's (``[time] [pid] [LEVEL] message``) so existing log parsers keep
working; ``--log-format json`` writes one JSON object per line instead, with the fields
``time`` (ISO 8601, milliseconds, UTC offset), ``level``, ``logger``, ``pid``, ``message`` and,
for a logged exception, ``exception`` (the traceback text). Logging never blocks serving: a
handler that fails to write drops the record (``logging.raiseExceptions`` is off).

Logging configurations (``logconfig``, ``logconfig_dict``) written for gunicorn configure
prefork's loggers as they configured gunicorn's (:func:`configure_logging_from`), and the line
that says why the server stops reaches stderr whatever they say (:func:`log_stop_reason`).

Both logs write what clients send through :func:`escape` (the access log every field, the error
log every request value it quotes: method, path, target, a WebSocket handshake's error), so a
request for ``/%0d%0a[...] [CRITICAL] forged`` or ``/%1b%5b2J`` can neither add a line nor put a
terminal escape in a file someone will ``tail``. As a second guard, the text formatter writes
any other control character in a message or traceback (an app's exception text) as ``\\xHH``,
keeping only the line ends and tabs of tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefork.errors import ConfigError

if TYPE_CHECKING:
    import configparser

    from prefork.config import Config

ERROR_LOGGER = "prefork.error"
GUNICORN_LOGGERS = "gunicorn"  # the names configurations written for gunicorn use
LINE_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

# What the text formatter still rewrites in a whole line: controls but LF and HTAB, and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _hex_control(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class TextLineFormatter(logging.Formatter):
    """gunicorn's line format, with control characters other than LF and HTAB in the message
    and traceback written as ``\\xHH`` (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return _CONTROL.sub(_hex_control, line) if _CONTROL.search(line) else line


class OncePerSecond:
    """Lets a line that a condition repeats (an accept failing at the open-files limit, many
    times a second under load) through at most once a second; the clock is injected."""

    __slots__ = ("_clock", "_last")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < 1.0:
            return False
        self._last = now
        return True


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record; field names are stable (log pipelines key on them)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        offset = time.strftime("%z", time.localtime(record.created))
        line: dict[str, object] = {
            "time": f"{seconds}.{int(record.msecs):03d}{offset[:3]}:{offset[3:]}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


def line_formatter(log_format: str) -> logging.Formatter:
    """The error log's formatter for ``--log-format`` (text or json)."""
    if log_format == "json":
        return JsonLineFormatter()
    return TextLineFormatter(LINE_FORMAT, DATE_FORMAT)


def configure_error_log(destination: str, level: str, log_format: str = "text") -> logging.Logger:
    """Point the error logger at ``destination`` ('-' is stderr) at ``level``."""
    logging.raiseExceptions = False
    logger = logging.getLogger(ERROR_LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    if destination == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = logging.FileHandler(destination, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"errorlog: cannot open {destination}: {exc.strerror}") from None
    handler.setFormatter(line_formatter(log_format))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def configure_logging_from(config: Config) -> None:
    """gunicorn's ``logconfig`` (fileConfig) and ``logconfig_dict`` (dictConfig): applied on
    top of prefork's set-up, so the loggers ``prefork.error`` and ``prefork.access`` can be
    routed anywhere.

    Configurations written for gunicorn name its loggers, ``gunicorn.error`` and
    ``gunicorn.access``; each such logger (and any other ``gunicorn`` or ``gunicorn.*`` one) is
    also given to its ``prefork`` counterpart, unless the configuration names that one itself,
    so the handlers, level and formatters meant for gunicorn's lines apply to prefork's. The
    server's own loggers are never left disabled by ``disable_existing_loggers``: a
    configuration that does not name them did not mean to silence the server."""
    if not config.logconfig_dict and not config.logconfig:
        return
    # with its handlers, socketserver and pickle (1.5 ms for configparser alone): only for these
    import configparser
    import logging.config

    try:
        if config.logconfig_dict:
            logging.config.dictConfig(with_prefork_loggers(
                {"version": 1, "disable_existing_loggers": False, **config.logconfig_dict}))
        if config.logconfig:
            if not os.path.isfile(config.logconfig):
                raise ConfigError(f"logconfig: no such file {config.logconfig}")
            logging.config.fileConfig(ini_with_prefork_loggers(config.logconfig),
                                      disable_existing_loggers=False)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError, RuntimeError,
            configparser.Error) as exc:
        raise ConfigError(f"logconfig: {type(exc).__name__}: {exc}") from None
    for name, logger in logging.root.manager.loggerDict.items():
        if _is_prefork_logger(name) and isinstance(logger, logging.Logger):
            logger.disabled = False


def prefork_counterpart(name: str) -> str | None:
    """``prefork.error`` for ``gunicorn.error``, ``prefork`` for ``gunicorn``; None for the
    loggers of anything else."""
    if name == GUNICORN_LOGGERS or name.startswith(GUNICORN_LOGGERS + "."):
        return "prefork" + name[len(GUNICORN_LOGGERS):]
    return None


def with_prefork_loggers(config: dict[str, Any]) -> dict[str, Any]:
    """A dictConfig dictionary whose gunicorn loggers are also set up under prefork's names.

    The copies list the same handler and filter names, which dictConfig resolves to the same
    objects, so a file handler is opened once and both names write through it."""
    loggers = config.get("loggers")
    if not isinstance(loggers, dict):
        return config
    extended = dict(loggers)
    for name, settings in loggers.items():
        counterpart = prefork_counterpart(str(name))
        if counterpart is not None and counterpart not in loggers and isinstance(settings, dict):
            extended[counterpart] = dict(settings)
    return {**config, "loggers": extended}


def ini_with_prefork_loggers(path: str) -> configparser.ConfigParser:
    """A fileConfig ini file whose gunicorn loggers are also set up under prefork's names, read
    with the defaults gunicorn gives it (``%(here)s`` is the file's directory)."""
    import configparser

    parser = configparser.ConfigParser({"__file__": path, "here": os.path.dirname(path)})
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    keys = [key.strip() for key in parser.get("loggers", "keys", fallback="").split(",")
            if key.strip()]
    qualnames = {parser.get(f"logger_{key}", "qualname", fallback="") for key in keys}
    added = []
    for key in keys:
        section = f"logger_{key}"
        counterpart = prefork_counterpart(parser.get(section, "qualname", fallback=""))
        if counterpart is None or counterpart in qualnames:
            continue
        alias = f"{key}_as_prefork"
        parser[f"logger_{alias}"] = {
            option: parser.get(section, option, raw=True)
            for option in parser.options(section) if option not in parser.defaults()}
        parser.set(f"logger_{alias}", "qualname", counterpart)
        added.append(alias)
    if added:
        parser.set("loggers", "keys", ",".join(keys + added))
    return parser


def _is_prefork_logger(name: str) -> bool:
    return name == "prefork" or name.startswith("prefork.")


def log_stop_reason(logger: logging.Logger, message: str, *args: object) -> None:
    """Log why the server stops (CRITICAL), and make sure the line reaches stderr whatever
    the logging configuration says: with the log in a file, a logging config that drops it,
    or the level set above CRITICAL, an exit would otherwise say nothing where the operator
    looks first."""
    logger.critical(message, *args)
    if not _reaches_stderr(logger, logging.CRITICAL):
        fallback = logging.StreamHandler(sys.stderr)
        fallback.setFormatter(line_formatter("text"))
        fallback.handle(logger.makeRecord(logger.name, logging.CRITICAL, __file__, 0, message,
                                          args, None))


def _reaches_stderr(logger: logging.Logger, level: int) -> bool:
    """Whether ``logger`` writes a record of ``level`` to stderr: ``logging``'s own walk
    (disabled, effective level, handler levels, propagate), counting only handlers without
    filters, which could drop it."""
    if logger.disabled or not logger.isEnabledFor(level) or logger.filters:
        return False
    current: logging.Logger | None = logger
    found = False
    while current is not None:
        for handler in current.handlers:
            found = True
            if level >= handler.level and not handler.filters and _writes_to_stderr(handler):
                return True
        if not current.propagate:
            break
        current = current.parent
    # with no handler at all, logging falls back on lastResort, which writes to stderr
    return not found and logging.lastResort is not None and level >= logging.lastResort.level


def _writes_to_stderr(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler,
                                                                    logging.FileHandler):
        return False
    try:
        return bool(handler.stream.fileno() == sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return handler.stream is sys.stderr


def reopen_log_files(logger: logging.Logger) -> None:
    """Close and reopen file handlers so rotated files are let go (SIGUSR1)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.close()
                handler.stream = handler._open()
            finally:
                handler.release()

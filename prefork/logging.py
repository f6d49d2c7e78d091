"""The error log: one format for the arbiter and the workers, reopened on SIGUSR1.

Lines look like gunicorn's (``[time] [pid] [LEVEL] message``) so existing log parsers keep
working; ``--log-format json`` writes one JSON object per line instead, with the fields
``time`` (ISO 8601, milliseconds, UTC offset), ``level``, ``logger``, ``pid``, ``message`` and,
for a logged exception, ``exception`` (the traceback text). Logging never blocks serving: a
handler that fails to write drops the record (``logging.raiseExceptions`` is off).

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
from typing import TYPE_CHECKING

from prefork.errors import ConfigError

if TYPE_CHECKING:
    from prefork.config import Config

ERROR_LOGGER = "prefork.error"
LINE_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

# Anything not printable ASCII or printable Latin-1, plus the quote and the escape character.
_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e\xa0-\xff]')
# What the text formatter still rewrites in a whole line: controls but LF and HTAB, and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if char.isprintable():
        return char
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` made safe to put between quotes on one log line: ``"`` and ``\\`` escaped,
    control characters (C0, DEL, C1) and unprintable ones above U+00FF as ``\\xHH`` /
    ``\\uHHHH`` (nginx's and Apache's convention). Printable Latin-1 passes unchanged."""
    if text.isascii():  # the common case; these checks cost half the regex search
        if text.isprintable() and '"' not in text and "\\" not in text:
            return text
    elif _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_char, text)


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
    routed anywhere."""
    if not config.logconfig_dict and not config.logconfig:
        return
    import logging.config  # with its handlers, socketserver and pickle: only for these settings

    try:
        if config.logconfig_dict:
            logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                       **config.logconfig_dict})
        if config.logconfig:
            if not os.path.isfile(config.logconfig):
                raise ConfigError(f"logconfig: no such file {config.logconfig}")
            logging.config.fileConfig(config.logconfig, disable_existing_loggers=False)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError, RuntimeError) as exc:
        raise ConfigError(f"logconfig: {type(exc).__name__}: {exc}") from None


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

"""The error log: one format for the arbiter and the workers, reopened on SIGUSR1.

Lines look like gunicorn's (``[time] [pid] [LEVEL] message``) so existing log parsers keep
working. The access log lives here too once it exists; request logging never blocks serving:
a handler that fails to write drops the record (``logging.raiseExceptions`` is off).
"""

from __future__ import annotations

import logging
import sys

from prefork.errors import ConfigError

ERROR_LOGGER = "prefork.error"
LINE_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def configure_error_log(destination: str, level: str) -> logging.Logger:
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
    handler.setFormatter(logging.Formatter(LINE_FORMAT, DATE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


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

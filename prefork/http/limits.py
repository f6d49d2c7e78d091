"""Limits and deadlines of one HTTP/1.1 connection.

The engine enforces the size limits itself (414, 431, 413); the deadlines are numbers the I/O layer
reads to arm its timers, because a sans-I/O engine has no clock of its own to wait on. This module
does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefork.errors import ConfigError, RemoteProtocolError


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits. Sizes are bytes, deadlines are seconds.

    The size defaults follow gunicorn's (8190 bytes for the request line and for one field line,
    100 fields), so a request that gunicorn accepts is accepted here too.
    """

    max_request_line: int = 8190
    max_headers: int = 100
    max_header_size: int = 8190
    max_body_size: int | None = None
    keep_alive_timeout: float = 5.0
    headers_timeout: float = 10.0
    body_timeout: float = 30.0
    max_buffer: int = 65536

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_headers", "max_header_size", "max_buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        body = self.max_body_size
        if body is not None and (isinstance(body, bool) or not isinstance(body, int) or body < 0):
            raise ConfigError(f"max_body_size must be None or an integer >= 0, got {body!r}")
        for name in ("keep_alive_timeout", "headers_timeout", "body_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")

    @property
    def max_head_size(self) -> int:
        """The largest request head (request line, fields, blank line) the limits allow."""
        return self.max_request_line + 2 + self.max_headers * (self.max_header_size + 2) + 2


def check_field_sizes(fields: list[tuple[bytes, bytes]], max_header_size: int) -> None:
    """Refuse (431) a field line ``name: value`` longer than ``max_header_size``.

    Backends call this only when the head was long enough for a field to be too long, so the
    common small head pays nothing for it.
    """
    limit = max_header_size - 2
    for name, value in fields:
        if len(name) + len(value) > limit:
            raise RemoteProtocolError("header field too long", 431)

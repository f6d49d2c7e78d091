"""Sample WSGI application for tests, bound as ``application`` only (the default fallback)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answers ``200 hello wsgi``."""
    body = b"hello wsgi"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def create_app() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """Factory: ``sample_wsgi:create_app()``."""
    return application

"""Hello world: a 13-byte text answer, as ASGI and as WSGI (the "hello" scenarios)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bench.apps.lifespan import Receive, Send, serve_lifespan

BODY = b"Hello, world!"
LENGTH = str(len(BODY))


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answer every request with ``BODY``."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", LENGTH.encode())],
    })
    await send({"type": "http.response.body", "body": BODY})


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with ``BODY``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", LENGTH)])
    return [BODY]

"""A 64 KB response body in one piece (the "body-64k" scenario): the cost of writing bulk bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bench.apps.lifespan import Receive, Send, serve_lifespan

BODY = b"x" * 65536
LENGTH = str(len(BODY))


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answer every request with ``BODY``."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/octet-stream"),
                    (b"content-length", LENGTH.encode())],
    })
    await send({"type": "http.response.body", "body": BODY})


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with ``BODY``."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", LENGTH)])
    return [BODY]

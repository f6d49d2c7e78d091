"""Echo the request body back (the "echo-4k" scenario): the cost of reading a request body.

A GET (the suite's readiness probe) has an empty body and gets an empty 200.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bench.apps.lifespan import Receive, Send, serve_lifespan


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Read the whole body, then send it back."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Read the whole body, then send it back."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]

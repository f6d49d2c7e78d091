"""Hello world: a 13-byte text answer, as ASGI and as WSGI (the "hello" scenarios).

``fixed_answer`` makes the pair of apps for any fixed body; ``large_body`` uses it too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bench.apps.lifespan import Receive, Send, serve_lifespan

Asgi = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def fixed_answer(body: bytes, content_type: str) -> tuple[Asgi, Wsgi]:
    """An ASGI and a WSGI app that answer every request with ``body``."""
    length = str(len(body))
    asgi_headers = [(b"content-type", content_type.encode()), (b"content-length", length.encode())]
    wsgi_headers = [("Content-Type", content_type), ("Content-Length", length)]

    async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": asgi_headers})
        await send({"type": "http.response.body", "body": body})

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", wsgi_headers)
        return [body]

    return asgi, wsgi


BODY = b"Hello, world!"
asgi, wsgi = fixed_answer(BODY, "text/plain")

"""A 1 KB JSON document, serialised on every request (the "json-1k" scenario).

Serialising per request, rather than sending cached bytes, is what a real JSON endpoint pays;
it is the same ``json.dumps`` call under every server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from bench.apps.lifespan import Receive, Send, serve_lifespan

DOCUMENT: dict[str, Any] = {
    "page": 1,
    "per_page": 10,
    "total": 1000,
    "next": "/items?page=2&per_page=10",
    "items": [
        {
            "id": number,
            "name": f"item-{number:04d}",
            "price": round(9.99 + number * 1.25, 2),
            "in_stock": number % 3 != 0,
            "tags": ["bench", "json", f"group-{number % 4}"],
        }
        for number in range(10)
    ],
}


def render() -> bytes:
    """The document as compact UTF-8 JSON (about 1 KB)."""
    return json.dumps(DOCUMENT, separators=(",", ":")).encode()


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answer every request with the document."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    body = render()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with the document."""
    body = render()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

"""Apps for the slow-client tests: large answers to clients that never read them.

``wsgi``: ``/big`` is a 50 MB one-piece body made for each request, ``/stream`` the same size
in 64 KB pieces, ``/file`` a 50 MB (sparse) file through ``wsgi.file_wrapper``, and anything
else a small answer. ``asgi``: a WebSocket endpoint that accepts
and then only waits for the client to leave, and a small HTTP answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

from tests.apps.lifespan import acknowledge_lifespan

SIZE = 50 * 1024 * 1024
PIECE = b"y" * (64 * 1024)
_SPARSE = tempfile.TemporaryFile()  # noqa: SIM115 - held for the worker's life; unlinked already
_SPARSE.truncate(SIZE)


def _stream() -> Iterator[bytes]:
    for _ in range(SIZE // len(PIECE)):
        yield PIECE


def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * SIZE]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(f"/proc/self/fd/{_SPARSE.fileno()}", "rb"))
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(SIZE))])
        return _stream()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

"""App for the prefork.messages message tests: a per-process cache that broadcasts invalidate.

ASGI ``app``: ``/value?KEY`` reads ``$MESSAGES_APP_DIR/KEY`` once and then answers from its
cache; ``/invalidate?KEY`` broadcasts ``{"invalidate": KEY}``; ``/send?NOTE`` sends
``{"note": NOTE}`` to the arbiter; ``/bad`` and ``/big`` send what must be refused;
``/flood?N`` broadcasts N times in a loop; ``/state`` tells what this worker received. Every
answer is JSON with the worker's pid. WSGI ``wsgi_app``: ``/send?NOTE`` from request threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import prefork.messages

CACHE: dict[str, str] = {}
RECEIVED: list[dict[str, Any]] = []
ASYNC_RECEIVED: list[dict[str, Any]] = []


@prefork.messages.on_broadcast
def _broken_listener(message: Any, origin: int) -> None:
    raise RuntimeError("a listener that fails on purpose")


@prefork.messages.on_broadcast
def _forget(message: Any, origin: int) -> None:
    RECEIVED.append({"data": message, "origin": origin})
    if isinstance(message, dict) and "invalidate" in message:
        CACHE.pop(message["invalidate"], None)


@prefork.messages.on_broadcast
async def _async_listener(message: Any, origin: int) -> None:
    ASYNC_RECEIVED.append({"data": message, "origin": origin})


def _handle(path: str, query: str) -> tuple[int, dict[str, Any]]:
    if path == "/value":
        if query not in CACHE:
            CACHE[query] = (Path(os.environ["MESSAGES_APP_DIR"]) / query).read_text()
        return 200, {"value": CACHE[query]}
    if path == "/invalidate":
        return 200, {"sent": prefork.messages.broadcast({"invalidate": query})}
    if path == "/send":
        return 200, {"sent": prefork.messages.send({"note": query})}
    if path == "/bad":
        try:
            prefork.messages.send({"not json": {1, 2}})
        except TypeError as exc:
            return 500, {"error": f"TypeError: {exc}"}
        return 200, {"error": None}
    if path == "/big":
        try:
            prefork.messages.broadcast("x" * (prefork.messages.MAX_PAYLOAD + 1))
        except ValueError as exc:
            return 500, {"error": f"ValueError: {exc}"}
        return 200, {"error": None}
    if path == "/flood":
        attempted = int(query)
        delivered = sum(prefork.messages.broadcast({"flood": i}) for i in range(attempted))
        return 200, {"attempted": attempted, "delivered": delivered}
    if path == "/state":
        return 200, {"slot": prefork.messages.slot, "worker_pid": prefork.messages.pid,
                     "received": len(RECEIVED), "last": RECEIVED[-20:],
                     "async_received": len(ASYNC_RECEIVED)}
    return 404, {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    status, answer = _handle(scope["path"], scope["query_string"].decode())
    body = json.dumps({"pid": os.getpid(), **answer}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status, answer = _handle(environ["PATH_INFO"], environ["QUERY_STRING"])
    body = json.dumps({"pid": os.getpid(), **answer}).encode()
    start_response(f"{status} X", [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(body)))])
    return [body]

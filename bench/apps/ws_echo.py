"""WebSocket echo (the "websocket" scenario); plain HTTP gets a 200 for the readiness probe."""

from __future__ import annotations

from typing import Any

from bench.apps.hello import asgi as hello
from bench.apps.lifespan import Receive, Send, serve_lifespan


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Accept, then send every message back as it came (text as text, bytes as bytes)."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "http":
        await hello(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        # Exactly one of the two keys, as the ASGI spec asks of websocket.send.
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})

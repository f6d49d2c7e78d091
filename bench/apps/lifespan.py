"""ASGI lifespan for the plain benchmark apps: acknowledge start-up and shutdown, nothing else.

Answering the lifespan scope (rather than raising) keeps every server's start-up path the same:
servers that treat a lifespan error as "unsupported" would otherwise log a traceback per start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Complete start-up and shutdown at once, then return."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""ASGI lifespan for the test apps: acknowledge start-up and shutdown, nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


async def acknowledge_lifespan(receive: Callable[[], Awaitable[dict[str, Any]]],
                               send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Complete start-up and shutdown at once; returns after shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

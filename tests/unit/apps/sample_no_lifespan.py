"""Sample ASGI 3 app without lifespan support: raises on any scope but http, as Django does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Answers ``200 no lifespan`` to http; refuses everything else."""
    if scope["type"] != "http":
        raise ValueError(f"only http is handled, not {scope['type']}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan"})

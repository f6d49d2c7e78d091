"""Sample ASGI 2 ("double callable") app for tests: ``App(scope)``, then ``instance(r, s)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class App:
    """Answers ``200 asgi2`` to http requests."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(
        self,
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        assert self.scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2"})

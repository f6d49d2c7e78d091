"""Sample ASGI 3 app for tests: http hello, lifespan support, a factory, a callable class."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

NOT_AN_APP = 42


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _greeter(greeting: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    body = greeting.encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(scope, receive, send)
            return
        assert scope["type"] == "http"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


app = _greeter("hello")


def create_app(greeting: str = "hello") -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Factory: ``sample_asgi:create_app()`` or ``sample_asgi:create_app('hi')``."""
    return _greeter(greeting)


class ASGIApp:
    """An ASGI 3 app as a callable instance."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)


instance = ASGIApp()
holder = types.SimpleNamespace(app=app)

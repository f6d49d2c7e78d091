"""ASGI apps for the WebSocket integration tests.

``make_app()`` returns one app that routes by path, so one forked server covers most tests. It
records what it saw (disconnect codes) in its own list, readable over HTTP at ``/log``: the
worker is another process, and a follow-up HTTP request both reads that side channel and shows
the worker still serves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def make_app() -> Callable[..., Awaitable[None]]:
    events: list[dict[str, Any]] = []

    async def accept(scope: dict[str, Any], receive: Receive, send: Send, **extra: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", **extra})

    async def echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                events.append({"path": scope["path"], "code": message["code"],
                               "reason": message.get("reason", "")})
                return
            reply = {"text": message["text"]} if "text" in message else {
                "bytes": message["bytes"]}
            await send({"type": "websocket.send", **reply})

    async def subprotocol(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        chosen = "chat.v2" if "chat.v2" in scope["subprotocols"] else None
        await accept(scope, receive, send, subprotocol=chosen)
        await send({"type": "websocket.send", "text": json.dumps(scope["subprotocols"])})
        await send({"type": "websocket.close"})

    async def headers(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send, headers=[(b"x-extra", b"yes")])
        await send({"type": "websocket.close"})

    async def reject(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async def deny(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})

    async def close(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send)
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        message = await receive()
        events.append({"path": scope["path"], "code": message["code"]})

    async def boom(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send)
        raise RuntimeError("boom after accept")

    async def boom_early(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError("boom before accept")

    async def twice(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send)
        await send({"type": "websocket.accept"})  # out of order: RuntimeError in the app

    async def leave(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send)  # then return without closing: 1000

    async def state(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(scope, receive, send)
        info = {"state": scope["state"], "extensions": scope["extensions"]}
        await send({"type": "websocket.send", "text": json.dumps(info)})
        await send({"type": "websocket.close"})

    async def slow(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Reads nothing for a while, so messages pile up and reading pauses; then counts."""
        await accept(scope, receive, send)
        await asyncio.sleep(0.3)
        count = 0
        while (await receive())["type"] == "websocket.receive":
            count += 1
            if count == 100:
                await send({"type": "websocket.send", "text": str(count)})

    routes: dict[str, Handler] = {
        "/echo": echo, "/subprotocol": subprotocol, "/headers": headers, "/reject": reject,
        "/deny": deny, "/close": close, "/boom": boom, "/boom-early": boom_early,
        "/twice": twice, "/leave": leave, "/state": state, "/slow": slow,
    }

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            scope["state"]["greeting"] = "hello"
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "websocket":
            await routes[scope["path"]](scope, receive, send)
        else:
            body = json.dumps(events).encode() if scope["path"] == "/log" else b"ok"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})

    return app

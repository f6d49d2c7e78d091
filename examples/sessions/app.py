"""A logged-in visit counter kept in a server-side session, stored two ways.

``in_memory`` keeps sessions in a dict inside the worker process; ``with_redis`` keeps them in
Redis. Run each with several workers and watch the counter (README.md explains the difference)::

    prefork examples.sessions.app:in_memory --workers 4
    REDIS_URL=redis://127.0.0.1:6379/0 prefork examples.sessions.app:with_redis --workers 4

    curl -c jar -X POST -d '{"user": "ada"}' http://127.0.0.1:8000/login
    curl -b jar http://127.0.0.1:8000/me      # {"user": "ada", "visits": 1, "pid": ...}

Every answer carries the pid of the worker that served it, so you can see where it landed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

COOKIE = "session"
TTL = 3600  # seconds a session lives after its last visit


class MemoryStore:
    """Sessions in this process's memory: each worker has its own, and a restart loses them."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def create(self, user: str) -> str:
        session_id = secrets.token_urlsafe(16)
        self.sessions[session_id] = {"user": user, "visits": 0}
        return session_id

    async def visit(self, session_id: str) -> dict[str, Any] | None:
        session = self.sessions.get(session_id)
        if session is None:
            return None
        session["visits"] += 1
        return dict(session)

    async def delete(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)


class RedisStore:
    """Sessions in Redis, one hash per session: every worker sees the same ones.

    The client is made in ``open()``, which runs at lifespan startup in each worker: a
    connection opened before the fork (at import time with ``--preload``) would be shared by
    every worker, and their replies would cross.
    """

    def __init__(self) -> None:
        self.client: Any = None

    async def open(self) -> None:
        import redis.asyncio  # here, so that the in-memory variant runs without the package

        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.client = redis.asyncio.Redis.from_url(url, decode_responses=True)
        await self.client.ping()  # fail at startup, not on the first request

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def create(self, user: str) -> str:
        session_id = secrets.token_urlsafe(16)
        key = f"session:{session_id}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"user": user, "visits": 0})
            pipe.expire(key, TTL)
            await pipe.execute()
        return session_id

    async def visit(self, session_id: str) -> dict[str, Any] | None:
        key = f"session:{session_id}"
        # One MULTI/EXEC: two workers counting the same session at once both get counted
        # (HINCRBY is atomic), which a read-modify-write in Python would not guarantee.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "visits", 1)
            pipe.hget(key, "user")
            pipe.expire(key, TTL)
            visits, user, _ = await pipe.execute()
        if user is None:  # unknown or expired: HINCRBY just made a stray hash
            await self.client.delete(key)
            return None
        return {"user": user, "visits": visits}

    async def delete(self, session_id: str) -> None:
        await self.client.delete(f"session:{session_id}")


def create_app(store: MemoryStore | RedisStore) -> Starlette:
    """The same routes over either store."""

    def answer(status: int = 200, **fields: Any) -> JSONResponse:
        return JSONResponse({**fields, "pid": os.getpid()}, status_code=status)

    async def login(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        user = str(body.get("user") or "") if isinstance(body, dict) else ""
        if not user:
            return answer(400, error="send {\"user\": NAME}")
        response = answer(user=user)
        response.set_cookie(COOKIE, await store.create(user), max_age=TTL, httponly=True,
                            samesite="lax")
        return response

    async def me(request: Request) -> JSONResponse:
        session_id = request.cookies.get(COOKIE)
        session = await store.visit(session_id) if session_id else None
        if session is None:
            return answer(401, error="not logged in (or this worker never heard of you)")
        return answer(**session)

    async def logout(request: Request) -> JSONResponse:
        session_id = request.cookies.get(COOKIE)
        if session_id:
            await store.delete(session_id)
        response = answer(user=None)
        response.delete_cookie(COOKIE)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    return Starlette(routes=[
        Route("/login", login, methods=["POST"]),
        Route("/me", me),
        Route("/logout", logout, methods=["POST"]),
    ], lifespan=lifespan)


in_memory = create_app(MemoryStore())
with_redis = create_app(RedisStore())

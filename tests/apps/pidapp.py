"""ASGI app for process tests: answers with its worker's pid; /crash, /block, /sleep?s=N."""

import asyncio
import os
import time

from tests.apps.lifespan import acknowledge_lifespan


def _leave_an_orphan():
    """Double fork: the grandchild outlives its parent and is re-parented to PID 1."""
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            time.sleep(0.2)
        os._exit(0)
    os.waitpid(pid, 0)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    path = scope["path"]
    if path == "/crash":
        os._exit(70)
    if path == "/block":
        time.sleep(float(scope["query_string"] or 30))  # blocks the event loop on purpose
    if path == "/orphan":
        _leave_an_orphan()
    if path == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or 1))
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

"""ASGI app for recycling tests: ``/leak`` keeps 2 MB more each time, ``/leak20`` 20 MB; every
answer is the pid."""

import os

from tests.apps.lifespan import acknowledge_lifespan

LEAK_BYTES = 2 * 1024 * 1024
_kept: list[bytes] = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    if scope["path"] == "/leak":
        _kept.append(b"\x01" * LEAK_BYTES)  # written, so resident (a calloc'd page is not)
    elif scope["path"] == "/leak20":
        _kept.append(b"\x01" * (10 * LEAK_BYTES))
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

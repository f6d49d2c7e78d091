"""An app factory, as used by ``module:factory()`` and ``--factory``."""

import os

IMPORTED_IN = os.getpid()


def create_app(greeting: str = "hello"):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = f"{greeting} {IMPORTED_IN} {os.getpid()}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app

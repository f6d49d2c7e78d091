"""An app that fails its lifespan startup while the file named by PREFORK_TEST_FAIL_FLAG exists."""

import os

from tests.apps.pidapp import app as serve_pid


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        if os.path.exists(os.environ["PREFORK_TEST_FAIL_FLAG"]):
            await send({"type": "lifespan.startup.failed", "message": "flag file present"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await serve_pid(scope, receive, send)

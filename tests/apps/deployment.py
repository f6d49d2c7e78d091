"""The same small app as WSGI and ASGI, for gunicorn deployments started under prefork: it
answers with what a deployed app looks at (its environment, the client, the scheme, its mount
point), so a test can tell that a config file's settings reached it."""

import json
import os
import sys

SEEN_VARIABLES = ("SPAM", "DJANGO_SECRET_KEY", "APP_MODE")


def _report(client: str, scheme: str, root_path: str, path: str) -> bytes:
    return json.dumps({
        "pid": os.getpid(), "client": client, "scheme": scheme, "root_path": root_path,
        "path": path, "env": {name: os.environ.get(name) for name in SEEN_VARIABLES},
        "helpers": "deployment_helpers" in sys.modules,
    }).encode()


def wsgi(environ, start_response):
    body = _report(environ.get("REMOTE_ADDR", ""), environ["wsgi.url_scheme"],
                   environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", ""))
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    client = scope["client"][0] if scope.get("client") else ""
    body = _report(client, scope["scheme"], scope.get("root_path", ""), scope["path"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

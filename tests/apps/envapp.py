"""ASGI app for settings tests: reports what the worker process sees."""

import json
import os
import sys


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/print":
        print("hello from the app's stdout", flush=True)
    body = json.dumps({
        "scheme": scope["scheme"], "server": scope["server"],
        "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
        "env": os.environ.get("PREFORK_TEST_ENV"), "umask": _umask(),
        "comm": _read(f"/proc/{os.getpid()}/comm").strip(), "argv0": sys.argv[0],
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _umask() -> int:
    with open(f"/proc/{os.getpid()}/status") as handle:
        for line in handle:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return -1

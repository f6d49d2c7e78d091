"""Apps for the fault tests: slow handlers, body readers, and apps that record in a file
(named by the query string) what they saw when their client went away.

ASGI ``app``: ``/sleep?S`` answers after S seconds; ``/body`` reads the whole body;
``/abort-request?FILE`` reads the body and records the message that ended it;
``/abort-response?FILE`` starts a streamed response, then records what ``receive()`` gives.
WSGI ``wsgi_app``: ``/abort-request?FILE`` and ``/abort-response?FILE`` record each
``close()`` of the iterable they return (and, for the first, how the body read ended).
"""

import asyncio
import time

from tests.apps.lifespan import acknowledge_lifespan


def _record(path, line):
    with open(path, "a") as handle:
        handle.write(line + "\n")


async def _answer(send, body):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await acknowledge_lifespan(receive, send)
        return
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/sleep":
        await asyncio.sleep(float(query or 1))
    elif path in ("/body", "/abort-request"):
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if query:
                    _record(query, "http.disconnect")
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if query:
            _record(query, "complete")
        await _answer(send, str(size).encode())
        return
    elif path == "/abort-response":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first piece\n", "more_body": True})
        message = await receive()
        while message["type"] == "http.request":  # the (empty) body of the GET comes first
            message = await receive()
        _record(query, message["type"])
        return
    await _answer(send, b"ok")


class _Recorded:
    """A response iterable that records its ``close()``."""

    def __init__(self, path, pieces, pause):
        self.path = path
        self.pieces = pieces
        self.pause = pause

    def __iter__(self):
        for piece in self.pieces:
            yield piece
            time.sleep(self.pause)

    def close(self):
        _record(self.path, "close")


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    record_to = environ["QUERY_STRING"]
    if path == "/abort-request":
        expected = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            got = len(environ["wsgi.input"].read(expected))
            _record(record_to, f"read {got} of {expected}")
        except OSError as exc:
            _record(record_to, "read raised " + type(exc).__name__)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Recorded(record_to, [b"done\n"], 0.0)
    if path == "/abort-response":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Recorded(record_to, [b"x" * 1024] * 2000, 0.005)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]

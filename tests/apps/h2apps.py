"""Apps for the HTTP/2 tests: one route per behaviour a stream can have, ASGI and WSGI.

``asgi``: ``/`` a 13-byte hello; ``/echo`` the request body back in one piece; ``/relay`` each
piece of the request body sent back as it arrives (streaming both ways); ``/big?N`` N MiB in
64 KiB pieces; ``/hold`` a stream that stays open until the client goes (it counts the streams
held, and the most held at once); ``/held`` those two counts as ``NOW MOST``; ``/stall`` reads
nothing and answers after 5 s; ``/scope`` the scope's HTTP version, scheme and headers as JSON;
``/trailers`` a body and a trailer field.
``wsgi``: ``/``, ``/echo`` and ``/big?N`` as above, and ``/stream`` three pieces.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from tests.apps.lifespan import acknowledge_lifespan

HELLO = b"Hello, world!"
PIECE = b"x" * 65536
MB = 1024 * 1024

_held = {"now": 0, "most": 0}


async def _answer(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client left")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _hold(receive: Any, send: Any) -> None:
    _held["now"] += 1
    _held["most"] = max(_held["most"], _held["now"])
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        _held["now"] -= 1


async def _relay(receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            await send({"type": "http.response.body", "body": message["body"],
                        "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b""})


async def _big(scope: dict[str, Any], send: Any) -> None:
    size = int(scope["query_string"] or b"1") * MB
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % size)]})
    for _ in range(size // len(PIECE)):
        await send({"type": "http.response.body", "body": PIECE, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _trailers(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"with trailers"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"42")]})


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    if scope["type"] != "http":
        return None
    path = scope["path"]
    if path == "/echo":
        return await _answer(send, await _body(receive))
    if path == "/relay":
        return await _relay(receive, send)
    if path == "/big":
        return await _big(scope, send)
    if path == "/hold":
        return await _hold(receive, send)
    if path == "/stall":
        await asyncio.sleep(5)
        return await _answer(send, HELLO)
    if path == "/held":
        return await _answer(send, b"%d %d" % (_held["now"], _held["most"]))
    if path == "/trailers":
        return await _trailers(send)
    if path == "/scope":
        body = json.dumps({
            "http_version": scope["http_version"], "scheme": scope["scheme"],
            "method": scope["method"], "path": scope["path"],
            "headers": [[name.decode("latin-1"), value.decode("latin-1")]
                        for name, value in scope["headers"]],
        }).encode()
        return await _answer(send, body)
    return await _answer(send, HELLO)


def _pieces(count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield PIECE


def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/big":
        size = int(environ.get("QUERY_STRING") or 1) * MB
        start_response("200 OK", [("Content-Length", str(size))])
        return _pieces(size // len(PIECE))
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one,", b"two,", b"three"])
    if path == "/scope":
        body = json.dumps({"protocol": environ["SERVER_PROTOCOL"],
                           "scheme": environ["wsgi.url_scheme"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]

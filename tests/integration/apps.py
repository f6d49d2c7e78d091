"""ASGI apps served by the integration tests: plain callables, and Starlette/FastAPI apps.

The forked tests load these by import string ("tests.integration.apps:NAME").
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at run
# time, and the model class below is local to its factory.
import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

HELLO = b"Hello, world!"
_HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
MB = 1024 * 1024

Scope = dict[str, Any]


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        chunks.append(message["body"])
        if not message.get("more_body", False):
            return b"".join(chunks)


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """The request body back, with its length and the method in headers."""
    body = await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-length", b"%d" % len(body)),
        (b"x-method", scope["method"].encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


async def scope_json(scope: Scope, receive: Any, send: Any) -> None:
    """The scope as JSON (bytes as latin-1 strings)."""
    await read_body(receive)
    body = json.dumps(_jsonable(scope)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def stream(scope: Scope, receive: Any, send: Any) -> None:
    """Three chunks, no Content-Length: chunked for HTTP/1.1, close-delimited for 1.0."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def not_found(scope: Scope, receive: Any, send: Any) -> None:
    """Answers without reading the request body."""
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-length", b"9")]})
    await send({"type": "http.response.body", "body": b"not found"})


async def status_with_body(scope: Scope, receive: Any, send: Any) -> None:
    """The status from the query string, always with a body (which must not reach HEAD, 204
    or 304 clients)."""
    status = int(scope["query_string"] or b"200")
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"a body", "more_body": True})
    await send({"type": "http.response.body", "body": b" that must not be seen"})


# -- memory-bounded transfers (forked) ---------------------------------------------------------

async def slow_upload(scope: Scope, receive: Any, send: Any) -> None:
    """Counts the body, yielding to the loop now and then so the client outruns it."""
    if scope["type"] != "http":
        return
    total = 0
    received = 0
    while True:
        message = await receive()
        total += len(message["body"])
        received += 1
        if received % 8 == 0:
            await asyncio.sleep(0.0005)
        if not message.get("more_body", False):
            break
    body = b"%d" % total
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def big_download(scope: Scope, receive: Any, send: Any) -> None:
    """``?N`` megabytes in 64 KiB pieces, as fast as the transport lets it."""
    if scope["type"] != "http":
        return
    size = int(scope["query_string"] or b"1") * MB
    piece = b"x" * 65536
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % size)]})
    for _ in range(size // len(piece)):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


# -- real frameworks (forked) -------------------------------------------------------------------

def starlette_app() -> Any:
    """A factory (serve with factory=True): routing, JSON, a form, streaming, a background task."""
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    done: list[str] = []

    async def home(request: Request) -> Response:
        return PlainTextResponse("home")

    async def item(request: Request) -> Response:
        return JSONResponse({"id": int(request.path_params["item_id"]),
                             "q": request.query_params.get("q")})

    async def form(request: Request) -> Response:
        # url-encoded form parsed by hand: Starlette's form() needs python-multipart
        fields = parse_qs((await request.body()).decode())
        return JSONResponse({name: values[0] for name, values in fields.items()})

    async def numbers(request: Request) -> Response:
        async def generate() -> Any:
            for number in range(5):
                yield f"{number}\n"
                await asyncio.sleep(0)

        return StreamingResponse(generate(), media_type="text/plain")

    async def record(name: str) -> None:
        await asyncio.sleep(0)
        done.append(name)

    async def background(request: Request) -> Response:
        return PlainTextResponse("queued", background=BackgroundTask(record, "task"))

    async def tasks(request: Request) -> Response:
        return JSONResponse(done)

    return Starlette(routes=[
        Route("/", home), Route("/items/{item_id:int}", item),
        Route("/form", form, methods=["POST"]), Route("/numbers", numbers),
        Route("/background", background), Route("/tasks", tasks),
    ])


def fastapi_app() -> Any:
    """A factory (serve with factory=True): path and query params, a JSON body, streaming,
    a background task."""
    from fastapi import BackgroundTasks, FastAPI
    from fastapi.responses import StreamingResponse
    from pydantic import BaseModel

    app = FastAPI()
    done: list[str] = []

    class Item(BaseModel):
        name: str
        price: float

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q}

    @app.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "price": item.price, "total": item.price * 2}

    @app.get("/numbers")
    async def numbers() -> StreamingResponse:
        async def generate() -> Any:
            for number in range(5):
                yield f"{number}\n"

        return StreamingResponse(generate(), media_type="text/plain")

    @app.post("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(done.append, "task")
        return {"status": "queued"}

    @app.get("/tasks")
    async def list_tasks() -> list[str]:
        return done

    return app


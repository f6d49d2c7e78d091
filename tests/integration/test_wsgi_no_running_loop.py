"""A WSGI app called inline (``--threads 1``) sees no running event loop, as under gunicorn's
sync worker, on uvloop and plain asyncio: not in its call, not in the steps of its iterable, not
in its ``close()``; so ``asyncio.run()`` and asgiref's ``async_to_sync`` work there, and the
server's loop is running and serving afterwards. Called as the head arrives (a GET) and after
the loop waited for the body (a POST whose body follows ``100 Continue``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

pytestmark = pytest.mark.timeout(30)


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def what_the_app_sees() -> dict[str, Any]:
    return {"running": asyncio._get_running_loop() is not None,
            "asyncio.run": asyncio.run(answer()),
            "async_to_sync": async_to_sync(answer)()}


class Pieces:
    """An iterable whose every step and ``close()`` run asyncio code, as a streamed answer
    that reads through an async client would."""

    def __init__(self, closes: list[dict[str, Any]]) -> None:
        self.closes = closes
        self.left = 3

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if not self.left:
            raise StopIteration
        self.left -= 1
        return json.dumps(what_the_app_sees()).encode() + b"\n"

    def close(self) -> None:
        self.closes.append(what_the_app_sees())


def probe_app(closes: list[dict[str, Any]]) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        if environ["PATH_INFO"] == "/pieces":
            return Pieces(closes)
        return [json.dumps(what_the_app_sees()).encode() + b"\n"]
    return app


def serve_inline(serve: Any, app: Callable[..., Any]) -> Any:
    """``serve`` for a WSGI app called on the loop thread, as a worker with --threads 1."""
    return serve(app, wsgi=True)


EXPECTED = {"running": False, "asyncio.run": 42, "async_to_sync": 42}


def test_no_running_loop_in_the_call_the_iterable_or_close(serve: Any,
                                                            client_factory: Any) -> None:
    closes: list[dict[str, Any]] = []
    server = serve_inline(serve, probe_app(closes))
    client = client_factory(server.port)
    for _ in range(2):  # one connection, one request after another
        reply = client.request("GET", "/one")
        assert reply.status == 200 and json.loads(reply.body) == EXPECTED
        reply = client.request("GET", "/pieces")
        assert reply.status == 200
        assert [json.loads(line) for line in reply.body.splitlines()] == [EXPECTED] * 3
    assert closes == [EXPECTED] * 2

    async def running() -> bool:
        return asyncio.get_running_loop() is server.loop and asyncio._get_running_loop() \
            is server.loop

    assert server.call(running())  # the server's loop is back on its thread's record


def test_no_running_loop_after_waiting_for_the_body(serve: Any, client_factory: Any) -> None:
    closes: list[dict[str, Any]] = []
    server = serve_inline(serve, probe_app(closes))
    client = client_factory(server.port)
    for path in ("/one", "/pieces"):
        client.send(f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n"
                    "Expect: 100-continue\r\n\r\n".encode())
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += client.sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        client.h11.receive_data(interim)
        client.send(b"body")
        reply = client.response("POST")
        assert reply.status == 200
        assert {json.dumps(json.loads(line)) for line in reply.body.splitlines()} == {
            json.dumps(EXPECTED)}
    assert closes == [EXPECTED]
    assert client.request("GET", "/one").status == 200

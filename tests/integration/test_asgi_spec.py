"""ASGI 3 ``http`` as the spec writes it: scope keys, ``receive`` chunks, ``send`` rules and the
pathsend and trailers extensions. Both parsers, uvloop and plain asyncio."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
import types
from pathlib import Path
from typing import Any

import pytest

from tests.integration import apps

pytestmark = pytest.mark.timeout(20)


def test_scope_keys(serve: Any, client_factory: Any) -> None:
    server = serve(apps.scope_json, lifespan_state={"db": "pool"})
    client = client_factory(server.port)
    reply = client.request("GET", "/a%20b/c%2Fd?x=1&y=%20", headers=[("X-Thing", "Yes")])
    scope = json.loads(reply.body)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c/d"
    assert scope["raw_path"] == "/a%20b/c%2Fd"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert ["x-thing", "Yes"] in scope["headers"]
    assert ["host", "test"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"] == {"db": "pool"}
    assert scope["extensions"] == {"http.response.pathsend": {}, "http.response.trailers": {},
                                   "http.response.zerocopysend": {}}


def _is_coroutine_function(func: object) -> bool:
    """What asgiref asks before it warns: inspect's answer on 3.12+, asyncio's before."""
    if hasattr(inspect, "markcoroutinefunction"):
        return inspect.iscoroutinefunction(func)
    return asyncio.iscoroutinefunction(func)


def test_receive_and_send_pass_for_coroutine_functions(serve: Any, client_factory: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b"%r %r" % (_is_coroutine_function(receive), _is_coroutine_function(send))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = serve(app)
    assert client_factory(server.port).request("GET", "/").body == b"True True"


def test_messages_may_be_any_mapping(serve: Any, client_factory: Any) -> None:
    """The spec's messages are dicts; a read-only mapping of the same keys is served alike."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(types.MappingProxyType(
            {"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]}))
        await send(types.MappingProxyType({"type": "http.response.body", "body": b"mapped"}))

    reply = client_factory(serve(app).port).request("GET", "/")
    assert (reply.status, reply.body) == (201, b"mapped")
    assert reply.headers[b"x-a"] == b"1"


def test_scope_http10_and_absolute_form(serve: Any, client_factory: Any) -> None:
    server = serve(apps.scope_json)
    client = client_factory(server.port)
    client.send(b"GET http://example.com/abs?q HTTP/1.0\r\n\r\n")
    scope = json.loads(client.recv_all().partition(b"\r\n\r\n")[2])
    assert scope["http_version"] == "1.0"
    assert (scope["path"], scope["query_string"]) == ("/abs", "q")
    assert ["host", "example.com"] in scope["headers"]


def test_absolute_form_authority_wins_over_host(serve: Any, client_factory: Any) -> None:
    # RFC 9112 §3.2.2: the target's authority, not the Host field, names the host
    server = serve(apps.scope_json)
    client = client_factory(server.port)
    client.send(b"GET http://origin.example:8080?q HTTP/1.1\r\nHost: other.example\r\n"
                b"Connection: close\r\n\r\n")
    scope = json.loads(client.recv_all().partition(b"\r\n\r\n")[2])
    assert (scope["path"], scope["query_string"]) == ("/", "q")
    hosts = [value for name, value in scope["headers"] if name == "host"]
    assert hosts == ["origin.example:8080"]


def test_root_path_is_part_of_path(serve: Any, client_factory: Any) -> None:
    server = serve(apps.scope_json, root_path="/api")
    scope = json.loads(client_factory(server.port).request("GET", "/users").body)
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/users"
    assert scope["raw_path"] == "/users"


def test_state_is_a_copy_per_request(serve: Any, client_factory: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope["state"]))
        scope["state"]["mutated"] = True
        await apps.hello(scope, receive, send)

    shared = {"counter": 1}
    server = serve(app, lifespan_state=shared)
    client = client_factory(server.port)
    client.request()
    client.request()
    assert seen == [{"counter": 1}, {"counter": 1}]
    assert shared == {"counter": 1}


def test_unix_socket_server_scope(serve: Any, client_factory: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "prefork.sock")
    serve(apps.scope_json, unix_path=path)
    scope = json.loads(client_factory(path=path).request().body)
    assert scope["server"] == [path, None]
    assert scope["client"] is None


def test_receive_chunks_then_disconnect_only_after_response(serve: Any,
                                                            client_factory: Any) -> None:
    messages: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        messages.append(await receive())

    server = serve(app)
    client = client_factory(server.port)
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    deadline = time.monotonic() + 5
    while not messages and time.monotonic() < deadline:
        time.sleep(0.01)
    client.send(b"2\r\nde\r\n0\r\n\r\n")
    assert client.response("POST").body == b"done"
    # the app's last receive() runs after the response went out: wait for it, not for luck
    deadline = time.monotonic() + 5
    while messages[-1]["type"] != "http.disconnect" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert messages[0] == {"type": "http.request", "body": b"abc", "more_body": True}
    assert b"".join(m.get("body", b"") for m in messages) == b"abcde"
    assert messages[-2]["more_body"] is False
    assert messages[-1] == {"type": "http.disconnect"}


def test_send_and_receive_results_run_as_tasks(serve: Any, client_factory: Any) -> None:
    """What send() and receive() return is awaited in place on the hot path, and may also be
    handed to asyncio.create_task, as uvicorn's coroutines may."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await asyncio.create_task(receive())
        start = {"type": "http.response.start", "status": 200, "headers": []}
        await asyncio.create_task(send(start))
        await asyncio.ensure_future(send({"type": "http.response.body",
                                          "body": message["body"] + b"!"}))

    server = serve(app)
    client = client_factory(server.port)
    assert client.request("POST", "/", body=b"hey").body == b"hey!"
    assert client.request("POST", "/", body=b"again").body == b"again!"


def test_pathsend(serve: Any, client_factory: Any, tmp_path: Path) -> None:
    content = os.urandom(300_000)
    target = tmp_path / "file.bin"
    target.write_bytes(content)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend", "path": str(target)})

    server = serve(app)
    client = client_factory(server.port)
    reply = client.request()
    assert reply.headers[b"content-length"] == b"300000"
    assert reply.body == content
    head = client.request("HEAD")
    assert head.headers[b"content-length"] == b"300000"
    assert head.body == b""
    assert client.request().body == content  # still in sync


async def _trailers_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"trailer", b"x-checksum")]})
    await send({"type": "http.response.body", "body": b"data", "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
                "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-more", b"1")]})


def test_trailers_sent_when_client_asks(serve: Any, client_factory: Any) -> None:
    server = serve(_trailers_app)
    client = client_factory(server.port)
    reply = client.request(headers=[("TE", "trailers")])
    assert reply.body == b"data!"
    assert reply.trailers == {b"x-checksum": b"abc", b"x-more": b"1"}
    assert client.request(headers=[("TE", "trailers")]).body == b"data!"


def test_trailers_dropped_when_client_did_not_ask(serve: Any, client_factory: Any) -> None:
    server = serve(_trailers_app)
    client = client_factory(server.port)
    reply = client.request()
    assert reply.body == b"data!"
    assert reply.trailers == {}
    assert client.request().body == b"data!"

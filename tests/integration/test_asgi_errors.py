"""The app can never break the wire: every failure is a 500 or a cut connection, one record in
``prefork.error`` each, and never a traceback to the client. Both parsers, both loops."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(20)


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "prefork.error" and r.levelno >= logging.ERROR]


async def _start(send: Any, headers: Any = (), status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


async def bad_header_value(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, [(b"x-evil", b"a\r\nSet-Cookie: stolen=1")])
    await send({"type": "http.response.body", "body": b"never seen"})


async def bad_header_name(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, [(b"x evil", b"1")])
    await send({"type": "http.response.body", "body": b"never seen", "more_body": True})


async def str_header(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, [("x-str", "not bytes")])
    await send({"type": "http.response.body", "body": b"never seen"})


async def list_message(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send([("type", "http.response.start"), ("status", 200)])


async def bad_status(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, status=99)
    await send({"type": "http.response.body", "body": b"never seen"})


async def raises_before_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise ValueError("secret internals")


async def raises_after_head_stored(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send)
    raise ValueError("secret internals")


async def returns_without_response(scope: dict[str, Any], receive: Any, send: Any) -> None:
    return


@pytest.mark.parametrize("app", [bad_header_value, bad_header_name, str_header, bad_status,
                                 list_message, raises_before_start, raises_after_head_stored,
                                 returns_without_response])
def test_failure_before_the_head_is_a_500(serve: Any, client_factory: Any, app: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    server = serve(app)
    client = client_factory(server.port)
    reply = client.request()
    assert reply.status == 500
    assert reply.body == b"Internal Server Error"
    assert b"secret" not in reply.body and b"evil" not in b"".join(reply.headers)
    assert len(_errors(caplog)) == 1
    # the request was read whole, so the connection stays usable
    assert client.request().status == 500
    assert len(_errors(caplog)) == 2


async def raises_mid_stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send)
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise ValueError("secret internals")


async def returns_mid_stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send)
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})


async def too_long(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, [(b"content-length", b"5")])
    await send({"type": "http.response.body", "body": b"12345678"})


async def too_long_streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, [(b"content-length", b"5")])
    await send({"type": "http.response.body", "body": b"123", "more_body": True})
    await send({"type": "http.response.body", "body": b"456", "more_body": True})


async def too_short(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _start(send, [(b"content-length", b"10")])
    await send({"type": "http.response.body", "body": b"123", "more_body": True})
    await send({"type": "http.response.body", "body": b"45"})


@pytest.mark.parametrize("app", [raises_mid_stream, returns_mid_stream, too_long,
                                 too_long_streamed, too_short])
def test_failure_after_the_head_cuts_the_connection(serve: Any, client_factory: Any, app: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    server = serve(app)
    client = client_factory(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    with contextlib.suppress(ConnectionResetError):
        data = client.recv_all()
    assert b"secret" not in data
    if data:
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert not body.endswith(b"0\r\n\r\n")  # never a complete (wrong) message
        if b"content-length: 5" in head:
            assert len(body) < 5 or body == b"12345"[:len(body)]
    assert len(_errors(caplog)) == 1


def test_send_after_complete_raises(serve: Any, client_factory: Any) -> None:
    caught: list[Exception] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _start(send)
        await send({"type": "http.response.body", "body": b"ok"})
        for message in ({"type": "http.response.body", "body": b"x"},
                        {"type": "http.response.start", "status": 200, "headers": []}):
            try:
                await send(message)
            except RuntimeError as exc:
                caught.append(exc)

    server = serve(app)
    client = client_factory(server.port)
    assert client.request().body == b"ok"
    assert client.request().body == b"ok"
    deadline = time.monotonic() + 5  # the app goes on after its response reached us
    while len(caught) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(caught) == 4


def test_body_before_start_is_a_500(serve: Any, client_factory: Any,
                                    caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    server = serve(app)
    assert client_factory(server.port).request().status == 500
    assert len(_errors(caplog)) == 1

"""A WebSocket chat: two real clients, messages relayed through one worker."""

from __future__ import annotations

import pytest
from websockets.sync.client import connect

from prefork.testing import running_server

ROOM: set = set()


async def chat_app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    ROOM.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            for member in list(ROOM):
                await member({"type": "websocket.send", "text": message["text"]})
    finally:
        ROOM.discard(send)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_two_clients_chat(parser: str) -> None:
    with running_server(chat_app, workers=1, http=parser) as server:
        url = f"ws://127.0.0.1:{server.port}/chat"
        with connect(url, open_timeout=5) as alice, connect(url, open_timeout=5) as bob:
            alice.send("hi bob")
            assert alice.recv(timeout=5) == "hi bob"
            assert bob.recv(timeout=5) == "hi bob"
            bob.send("hello alice")
            assert alice.recv(timeout=5) == "hello alice"
            assert bob.recv(timeout=5) == "hello alice"
            bob.close()
            alice.send("still there?")
            assert alice.recv(timeout=5) == "still there?"

"""Starlette and FastAPI apps served end to end by a forked worker, read with ``http.client``:
routing, JSON, a form POST, a streaming response and a background task. Both parsers."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from prefork.testing import running_server

pytest.importorskip("starlette")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.timeout(30)


class Session:
    """One keep-alive ``http.client`` connection: every request below reuses it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def poll_json(self, path: str, expected: Any) -> Any:
        deadline = time.monotonic() + 5
        while True:
            value = json.loads(self.call("GET", path)[2])
            if value == expected or time.monotonic() > deadline:
                return value
            time.sleep(0.02)


@pytest.fixture
def session(parser: str, request: pytest.FixtureRequest) -> Iterator[Session]:
    with running_server(f"tests.integration.apps:{request.param}", factory=True, workers=1,
                        http=parser) as server:
        client = Session(server.port)
        try:
            yield client
        finally:
            client.conn.close()


@pytest.mark.parametrize("session", ["starlette_app"], indirect=True)
def test_starlette(session: Session) -> None:
    assert session.call("GET", "/")[::2] == (200, b"home")
    status, headers, body = session.call("GET", "/items/42?q=x")
    assert (status, json.loads(body)) == (200, {"id": 42, "q": "x"})
    assert headers["content-type"] == "application/json"
    assert session.call("GET", "/items/nope")[0] == 404
    status, _, body = session.call("POST", "/form", b"name=ann&city=paris",
                                   {"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(body) == {"name": "ann", "city": "paris"}
    status, headers, body = session.call("GET", "/numbers")
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"0\n1\n2\n3\n4\n"
    assert session.call("GET", "/background")[2] == b"queued"
    assert session.poll_json("/tasks", ["task"]) == ["task"]
    assert session.call("POST", "/", b"x" * 10_000)[0] == 405  # early answer, body dropped
    assert session.call("GET", "/")[2] == b"home"


@pytest.mark.parametrize("session", ["fastapi_app"], indirect=True)
def test_fastapi(session: Session) -> None:
    status, _, body = session.call("GET", "/items/7?q=hi")
    assert (status, json.loads(body)) == (200, {"id": 7, "q": "hi"})
    assert session.call("GET", "/items/seven")[0] == 422
    status, _, body = session.call("POST", "/items", json.dumps({"name": "pen", "price": 1.5})
                                   .encode(), {"Content-Type": "application/json"})
    assert (status, json.loads(body)) == (200, {"name": "pen", "price": 1.5, "total": 3.0})
    assert session.call("POST", "/items", b"{bad", {"Content-Type": "application/json"})[0] \
        == 422
    assert session.call("GET", "/numbers")[2] == b"0\n1\n2\n3\n4\n"
    assert json.loads(session.call("POST", "/background")[2]) == {"status": "queued"}
    assert session.poll_json("/tasks", ["task"]) == ["task"]
    assert session.call("GET", "/missing")[0] == 404

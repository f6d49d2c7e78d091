"""Every request in ``tests/corpus`` against a real forked server, on both parser backends.

One server per parser (module scope, one worker). Each corpus file goes over a fresh raw socket;
the test asserts the status named by the file, a ``Connection: close`` response followed by the
server closing, that the application never saw the request (never called at all, or for ``body-``
files never saw the end of the body), and that the same worker still serves a good request.
See ``tests/corpus/README.md`` for the file convention and the limits used here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefork.testing import http_request, parse_response, running_server
from tests.apps.lifespan import acknowledge_lifespan

pytestmark = pytest.mark.timeout(30)

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted(path.name for path in CORPUS.glob("*.http"))
PARSERS = ("httptools", "h11")
LIMITS = {
    "limit_request_line": 1024,
    "limit_request_fields": 20,
    "limit_request_field_size": 1024,
    "limit_request_body": 64,
}


def recording_app(log_path: str) -> Any:
    """An ASGI app that appends what it saw to ``log_path`` (one write per line, O_APPEND):
    ``start METHOD PATH`` when called, ``end N`` once it has the whole body of N bytes,
    ``disconnect`` if the body was cut off; it answers with its pid."""

    def record(line: str) -> None:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8", "backslashreplace") + b"\n")
        finally:
            os.close(fd)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await acknowledge_lifespan(receive, send)
        record(f"start {scope['method']} {scope['path']}")
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                record("disconnect")
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        record(f"end {size}")
        body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


@dataclass
class CorpusServer:
    port: int
    worker_pid: int
    log: Path

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture(scope="module", params=PARSERS)
def corpus_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusServer]:
    log = tmp_path_factory.mktemp(f"corpus-{request.param}") / "app.log"
    with running_server(recording_app(str(log)), workers=1, http=request.param,
                        **LIMITS) as server:
        (pid,) = server.worker_pids()
        yield CorpusServer(server.port, pid, log)


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send ``raw`` without closing our side; everything read until the server closes."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may refuse and close before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                pytest.fail(f"the server did not close the connection within {timeout}s; "
                            f"read {b''.join(chunks)[:200]!r}")
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80
    for name in CASES:
        assert name[:3].isdigit() and name[3] == "-", name


@pytest.mark.parametrize("case", CASES)
def test_corpus_request(corpus_server: CorpusServer, case: str) -> None:
    expected = int(case[:3])
    raw = (CORPUS / case).read_bytes()
    seen = len(corpus_server.log_lines())

    response = exchange(corpus_server.port, raw)
    assert response, "no response at all"
    status, headers, body = parse_response(response)
    assert status == expected, (status, body)
    assert "close" in headers.get("connection", "").lower(), headers
    assert int(headers["content-length"]) == len(body)

    # The worker still serves, and is the same process.
    status, _, body = http_request(corpus_server.port, "/probe")
    assert status == 200
    assert int(body) == corpus_server.worker_pid

    lines = corpus_server.log_lines()[seen:]
    assert lines[-2:] == ["start GET /probe", "end 0"], lines
    during = lines[:-2]
    if case[4:].startswith("body-"):
        assert not [line for line in during if line.startswith("end")], during
    else:
        assert during == [], during

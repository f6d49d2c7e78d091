"""A 256 MiB upload read by a WSGI app stays in bounded worker memory: spooled to disk first
(``--threads 1``) or streamed through the bounded buffer (``--threads 4``)."""

from __future__ import annotations

import json
import os
import socket
import zlib
from collections.abc import Iterator

import pytest

from prefork.server import Server
from prefork.testing import parse_response, running_server

APP = "tests.integration.wsgi_apps:app"
SIZE = 256 << 20
BLOCK = os.urandom(1 << 20)


@pytest.fixture(params=[1, 4], ids=["inline", "threads4"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running_server(APP, workers=1, threads=request.param) as started:
        yield started


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_big_upload_in_bounded_memory(server: Server, framing: str) -> None:
    pid = server.worker_pids()[0]
    before = hwm_kib(pid)
    crc = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        if framing == "length":
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % SIZE)
        else:
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
        chunk_head = b"%x\r\n" % len(BLOCK)
        for _ in range(SIZE // len(BLOCK)):
            crc = zlib.crc32(BLOCK, crc)
            if framing == "length":
                sock.sendall(BLOCK)
            else:
                sock.sendall(chunk_head + BLOCK + b"\r\n")
        if framing == "chunked":
            sock.sendall(b"0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status, _, body = parse_response(data)
    assert status == 200 and json.loads(body) == {"size": SIZE, "crc": crc}
    grown_mib = (hwm_kib(pid) - before) / 1024
    print(f"worker peak RSS grew by {grown_mib:.1f} MiB for a {SIZE >> 20} MiB upload")
    assert grown_mib < 32

"""Helpers shared by the test suite and by embedders' own tests.

``running_server`` starts a :class:`prefork.Server` (port 0 by default) and guarantees that the
arbiter and every worker it ever reported are gone afterwards, killed by pid if need be.
``http_request`` speaks raw HTTP/1.1 over a fresh socket so tests see exactly what went over the
wire; ``process_tree`` reads /proc to count an arbiter's descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from prefork.server import Server


@contextlib.contextmanager
def running_server(app: Any, **settings: Any) -> Iterator[Server]:
    """A started Server; stopped (and every process it made killed) on exit."""
    settings.setdefault("bind", "127.0.0.1:0")
    start_timeout = settings.pop("start_timeout", 30.0)
    server = Server(app, **settings)
    server.start(timeout=start_timeout)
    arbiter_pid = server.pid
    assert arbiter_pid is not None
    seen = set(process_tree(arbiter_pid))
    try:
        yield server
    finally:
        seen.update(process_tree(arbiter_pid))
        with contextlib.suppress(Exception):
            server.stop(timeout=15.0)
        for pid in seen - {arbiter_pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def process_tree(root: int) -> list[int]:
    """``root``'s descendants (not ``root`` itself), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError past ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def http_request(port: int, path: str = "/", *, method: str = "GET", body: bytes = b"",
                 headers: dict[str, str] | None = None, host: str = "127.0.0.1",
                 timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection with ``Connection: close``; (status, headers, body)."""
    authority = f"[{host}]" if ":" in host else host  # an IPv6 literal (RFC 3986 §3.2.2)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}:{port}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return parse_response(b"".join(chunks))


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split one close-delimited or Content-Length response (no chunked decoding needed here)."""
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("empty response")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return status, headers, body


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2:]
    return b"".join(out)

"""Building the ASGI ``http`` scope from a parsed request (pure: no I/O)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from prefork.http.events import Request

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
HTTP_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Raw path and query string of a request target (origin- or absolute-form)."""
    if not target.startswith(b"/"):
        # absolute-form (RFC 9112 §3.2.2): drop scheme and authority
        _, sep, rest = target.partition(b"://")
        if sep:
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    return path, query


def websocket_scope(
    request: Request,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any],
) -> dict[str, Any]:
    """The ASGI ``websocket`` scope of an upgrade request (``scheme`` is ws or wss)."""
    scope = http_scope(request, scheme=scheme, client=client, server=server,
                       root_path=root_path, state=state)
    del scope["method"]
    scope["type"] = "websocket"
    subprotocols: list[str] = []
    for name, value in request.headers:
        if name == b"sec-websocket-protocol":
            subprotocols.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    scope["subprotocols"] = subprotocols
    return scope


def http_scope(
    request: Request,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any],
) -> dict[str, Any]:
    raw_path, query = split_target(request.target)
    path = unquote(raw_path.decode("latin-1"))
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": HTTP_VERSIONS.get(request.http_version, "1.1"),
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": request.method.decode("ascii"),
        "root_path": root_path,
        "path": root_path + path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": request.headers,
        "state": state.copy(),
    }

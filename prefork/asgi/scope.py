"""Building the ASGI ``http`` and ``websocket`` scopes from a parsed request (pure: no I/O).

The scope is built once per request on the hot path, so it is one dict literal: no per-key
calls, ``unquote`` only when the path holds a ``%``, common methods looked up rather than
decoded, and the lifespan ``state`` copied only when it holds something.
``path`` includes ``root_path`` (ASGI spec 2.3+: "path ... includes the root_path"), while
``raw_path`` is the target's path exactly as received.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

from prefork.http.events import Request
from prefork.http.targets import split_target

ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}
HTTP_VERSIONS: Final = {b"1.1": "1.1", b"1.0": "1.0", b"2": "2"}
METHODS: Final = {m.encode(): m
                   for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


def http_scope(
    request: Request,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any],
) -> dict[str, Any]:
    """The ASGI ``http`` scope of ``request``; ``state`` is the lifespan state (copied)."""
    target = request.target
    if target[:1] == b"/":
        raw_path, _, query = target.partition(b"?")
    else:
        raw_path, query = split_target(target)
    path = raw_path.decode("latin-1")
    if "%" in path:
        path = unquote(path)
    method = request.method
    # A copy of a template with every key, then the request's own values: cheaper than a
    # 14-key dict display (0.48 against 0.64 µs, timeit).
    scope = _TEMPLATE.copy()
    scope["http_version"] = HTTP_VERSIONS.get(request.http_version, "1.1")
    scope["server"] = server
    scope["client"] = client
    scope["scheme"] = scheme
    scope["method"] = METHODS.get(method) or method.decode("ascii")
    scope["root_path"] = root_path
    scope["path"] = root_path + path if root_path else path
    scope["raw_path"] = raw_path
    scope["query_string"] = query
    scope["headers"] = request.headers
    scope["state"] = state.copy() if state else {}
    scope["extensions"] = {"http.response.pathsend": {}, "http.response.trailers": {}}
    return scope


_TEMPLATE: Final[dict[str, Any]] = {
    "type": "http", "asgi": ASGI_VERSION, "http_version": "1.1", "server": None, "client": None,
    "scheme": "http", "method": "GET", "root_path": "", "path": "/", "raw_path": b"/",
    "query_string": b"", "headers": [], "state": None, "extensions": None,
}


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
    scope["extensions"] = {}
    subprotocols: list[str] = []
    for name, value in request.headers:
        if name == b"sec-websocket-protocol":
            subprotocols.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    scope["subprotocols"] = subprotocols
    return scope

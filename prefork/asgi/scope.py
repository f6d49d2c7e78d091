"""Building the ASGI ``http`` and ``websocket`` scopes from a parsed request (pure: no I/O).

The scope is built once per request on the hot path, so it is one dict literal: no per-key
calls, ``unquote`` only when the path holds a ``%``, common methods looked up rather than
decoded, the lifespan ``state`` copied only when it holds something, and the ``extensions``
a copy of the worker's (with the connection's ``tls`` facts, made once per connection, added
over TLS).
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
    extensions: dict[str, Any],
    tls: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ASGI ``http`` scope of ``request``; ``state`` is the lifespan state and
    ``extensions`` the extensions served (both copied); ``tls`` the connection's TLS facts,
    None in cleartext (the spec forbids the extension there)."""
    target = request.target
    if target[:1] == b"/":
        if 0x3F in target:  # "?" as an int: a bytes operand is first tried as an int
            raw_path, _, query = target.partition(b"?")
        else:  # no query: no method call
            raw_path, query = target, b""
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
    # One copy of a prepared dict: cheaper than a display with a new empty dict per extension.
    served = extensions.copy()
    if tls is not None:
        served["tls"] = tls
    scope["extensions"] = served
    return scope


_TEMPLATE: Final[dict[str, Any]] = {
    "type": "http", "asgi": ASGI_VERSION, "http_version": "1.1", "server": None, "client": None,
    "scheme": "http", "method": "GET", "root_path": "", "path": "/", "raw_path": b"/",
    "query_string": b"", "headers": [], "state": None, "extensions": None,
}


_NO_EXTENSIONS: Final[dict[str, Any]] = {}  # copied, never changed


def websocket_scope(
    request: Request,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any],
    tls: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ASGI ``websocket`` scope of an upgrade request (``scheme`` is ws or wss); its one
    extension is ``tls``, over TLS."""
    scope = http_scope(request, scheme=scheme, client=client, server=server,
                       root_path=root_path, state=state, extensions=_NO_EXTENSIONS, tls=tls)
    del scope["method"]
    scope["type"] = "websocket"
    subprotocols: list[str] = []
    for name, value in request.headers:
        if name == b"sec-websocket-protocol":
            subprotocols.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    scope["subprotocols"] = subprotocols
    return scope

"""An ASGI app that answers with what the scope's extensions offered: an early hint first when
it may, then the ``tls`` facts (the server certificate as a flag) as JSON."""

from __future__ import annotations

import json
from typing import Any

HINT = b"</style.css>; rel=preload; as=style"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    extensions = scope["extensions"]
    if "http.response.early_hint" in extensions:
        await send({"type": "http.response.early_hint", "links": [HINT]})
    tls = dict(extensions.get("tls") or {})
    if tls:
        tls["server_cert"] = tls["server_cert"] is not None
    body = json.dumps({"offered": sorted(extensions), "tls": tls}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

"""What each benchmark scenario serves and how it is loaded: data, no I/O.

A scenario names the app per interface (a scenario without a WSGI app is not run on WSGI
servers), the request wrk sends, how the response is checked before the load starts, and how
the server is placed on the CPUs. Every scenario but ``hello-2w`` runs one worker pinned to its
own core; ``hello-2w`` runs two workers with nothing pinned, so the server shares both cores with
the load generator and its figures are marked as contaminated.

The HTTP/2 scenarios (``http2``) are loaded by h2load instead of wrk, over cleartext by prior
knowledge, with ``connections`` connections of ``streams`` concurrent streams each: 100 streams
in flight in both, spread over ten connections or on one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# The FastAPI scenario's request body: a small nested document, as an API would receive.
ITEM = json.dumps({"name": "widget", "price": 12.5, "quantity": 3,
                   "tags": ["bench", "fastapi", "pydantic"]})
ECHO_BODY = "x" * 4096


@dataclass(frozen=True)
class Scenario:
    """One row group of the results: an app, a request and a placement."""

    name: str
    title: str
    apps: dict[str, str]  # interface ("asgi" or "wsgi") -> "module:attribute"
    path: str = "/"
    method: str = "GET"
    body: str = ""
    content_type: str | None = None
    close: bool = False  # send "Connection: close": one connection per request
    websocket: bool = False  # load with the WebSocket echo client instead of wrk
    workers: int = 1
    pinned: bool = True
    ready_path: str = "/"
    expect_length: int | None = None  # response body length the pre-load check insists on
    note: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = False  # h2load, cleartext HTTP/2 by prior knowledge, instead of wrk
    connections: int | None = None  # None: the suite's --connections
    streams: int = 1  # concurrent streams per connection (h2load -m)

    def request_headers(self) -> dict[str, str]:
        """Headers of the scenario's request, as wrk and the pre-load check send them."""
        headers = dict(self.headers)
        if self.content_type:
            headers["Content-Type"] = self.content_type
        if self.close:
            headers["Connection"] = "close"
        return headers


def _plain(module: str) -> dict[str, str]:
    return {"asgi": f"bench.apps.{module}:asgi", "wsgi": f"bench.apps.{module}:wsgi"}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hello", "Hello world, keep-alive", _plain("hello"), expect_length=13),
    Scenario("hello-close", "Hello world, Connection: close", _plain("hello"), close=True,
             expect_length=13,
             note="A new TCP connection per request: connection set-up cost, where the "
                  "dispatch modes differ."),
    Scenario("json-1k", "1 KB JSON, serialised per request", _plain("json_doc"),
             expect_length=1005),
    Scenario("body-64k", "64 KB response body", _plain("large_body"), expect_length=65536),
    Scenario("echo-4k", "4 KB POST body echoed back", _plain("echo"), method="POST",
             body=ECHO_BODY, content_type="application/octet-stream", expect_length=4096),
    Scenario("starlette", "Starlette route (path parameter, JSON answer)",
             {"asgi": "bench.apps.starlette_route:app"}, path="/users/42",
             ready_path="/users/42"),
    Scenario("flask", "Flask route (path parameter, JSON answer)",
             {"wsgi": "bench.apps.flask_route:app"}, path="/users/42", ready_path="/users/42"),
    Scenario("fastapi", "FastAPI route, pydantic-validated JSON body",
             {"asgi": "bench.apps.fastapi_body:app"}, path="/items", method="POST", body=ITEM,
             content_type="application/json", ready_path="/ready"),
    Scenario("websocket", "WebSocket echo, messages/s", {"asgi": "bench.apps.ws_echo:asgi"},
             websocket=True,
             note="16 connections, one 64-byte text message in flight on each; the client is "
                  "Python (websockets on uvloop) pinned to the load core."),
    Scenario("h2-hello", "Hello world over HTTP/2 (h2c), 10 connections x 10 streams",
             {"asgi": "bench.apps.hello:asgi"}, http2=True, connections=10, streams=10,
             expect_length=13,
             note="h2load -c 10 -m 10: 100 streams in flight, cleartext HTTP/2 by prior "
                  "knowledge; only the servers that serve it run."),
    Scenario("h2-hello-1c", "Hello world over HTTP/2 (h2c), 1 connection x 100 streams",
             {"asgi": "bench.apps.hello:asgi"}, http2=True, connections=1, streams=100,
             expect_length=13,
             note="h2load -c 1 -m 100: 100 streams in flight on one connection."),
    Scenario("hello-2w", "Hello world, keep-alive, 2 workers, unpinned", _plain("hello"),
             workers=2, pinned=False, expect_length=13,
             note="Contaminated: the server's two workers and wrk share the machine's cores, "
                  "so this shows scaling and memory, not a clean rate."),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
# The ratio column's reference where the interface's (uvicorn) does not serve the scenario:
# HTTP/2 is measured against granian, the rate to reach.
SCENARIO_REFERENCES = {scenario.name: "granian" for scenario in SCENARIOS if scenario.http2}

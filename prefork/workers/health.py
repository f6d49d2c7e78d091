"""The health path (``--health-path``), answered by the worker itself without calling the app.

A load balancer or a Kubernetes probe asks ``GET /_prefork/health`` (the configured path): the
answer is ``200 ok`` while the worker serves and ``503 draining`` from the moment shutdown is
announced (``--shutdown-delay``: the arbiter sends ``Unready`` on SIGTERM) or the worker drains.
It never reaches the app, the access log or the request hooks, so probes cost a few
microseconds and cannot be broken by the app.

It is a request cycle like the app's (``prefork.workers.contract.Cycle``), which completes
inside ``begin`` and needs no task; a body sent with the probe is read and dropped by the
protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from prefork.http.events import Request, Response
from prefork.workers.contract import RESPONSE_COMPLETE, RESPONSE_NOT_STARTED, Connection, Cycle
from prefork.workers.response import write_whole

_TEXT = (b"content-type", b"text/plain; charset=utf-8")
_NO_STORE = (b"cache-control", b"no-store")
SERVING = (Response(200, [_TEXT, _NO_STORE, (b"content-length", b"3")]), b"ok\n")
DRAINING = (Response(503, [_TEXT, _NO_STORE, (b"content-length", b"9")]), b"draining\n")
WRONG_METHOD = (Response(405, [_TEXT, _NO_STORE, (b"allow", b"GET, HEAD"),
                               (b"content-length", b"19")]), b"Method Not Allowed\n")


def is_health_request(target: bytes, health_path: bytes) -> bool:
    """The request's path (query ignored) is the health path."""
    if not target.startswith(health_path):
        return False
    rest = target[len(health_path):]
    return not rest or rest[:1] == b"?"


class HealthCycle(Cycle):
    """One health probe; ``draining``: the worker drains or shutdown was announced."""

    __slots__ = ("draining", "method", "protocol", "response_state", "task")

    def __init__(self, protocol: Connection, request: Request, draining: bool) -> None:
        self.protocol = protocol
        self.method = request.method
        self.draining = draining
        self.response_state = RESPONSE_NOT_STARTED
        self.task: asyncio.Task[None] | None = None

    @property
    def body_size(self) -> int:
        return 0  # a probe's body is never kept

    def body_received(self, data: bytes) -> None:
        """Dropped: the answer does not depend on it."""

    def request_complete(self) -> None:
        """Nothing waits for it."""

    def client_finished_sending(self) -> None:
        """The answer went out already."""

    def client_gone(self) -> None:
        """The answer went out already."""

    def begin(self, app: Any) -> Coroutine[Any, Any, None] | None:
        protocol = self.protocol
        if self.method not in (b"GET", b"HEAD"):
            response, body = WRONG_METHOD
        elif self.draining:
            response, body = DRAINING
        else:
            response, body = SERVING
        write_whole(protocol, response, body)
        self.response_state = RESPONSE_COMPLETE
        protocol.response_complete()
        protocol.cycle_finished(self)
        return None

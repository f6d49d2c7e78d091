"""Watching requests go by: the access log line and gunicorn's ``pre_request``/``post_request``.

The protocol calls :func:`begin` when a request head arrives and :func:`end` when its response
is complete, and only while ``ServingState.observing`` is true (an access log or one of the two
hooks is configured): with neither, a request costs one attribute test here.

``req`` and ``resp`` stand in for gunicorn's objects with the attributes hooks use: ``req.method``,
``uri``, ``path``, ``query``, ``version``, ``headers`` (upper-case names, as gunicorn),
``remote_addr``, ``scheme``; ``resp.status`` (``"200 OK"``), ``status_code``, ``headers``,
``sent``. ``environ`` is the WSGI environ, or the ASGI scope for ASGI apps.
"""

from __future__ import annotations

import os
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from prefork.hooks import call_hook
from prefork.http.events import Request
from prefork.http.targets import split_target
from prefork.logs.access_format import AccessRecord

if TYPE_CHECKING:
    from prefork.config import Config
    from prefork.hooks import WorkerView
    from prefork.http.connection import ServerConnection
    from prefork.logs.access_log import AccessLog

_VERSIONS = {b"1.1": (1, 1), b"1.0": (1, 0), b"2": (2, 0)}


class Watching(Protocol):
    """What of the worker's serving state an observation reads (read-only, so the protocol's
    own state type fits it without this module importing the protocol)."""

    @property
    def config(self) -> Config: ...
    @property
    def worker_view(self) -> WorkerView | None: ...
    @property
    def access_log(self) -> AccessLog: ...


class Watched(Protocol):
    """The connection a watched request came on."""

    @property
    def state(self) -> Watching: ...
    @property
    def conn(self) -> ServerConnection: ...
    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def scheme(self) -> str: ...


class RequestView:
    """gunicorn's ``req`` for ``pre_request``/``post_request``."""

    def __init__(self, request: Request, client: tuple[str, int] | None, scheme: str) -> None:
        raw_path, query = split_target(request.target)
        self.method = request.method.decode("latin-1")
        self.uri = request.target.decode("latin-1")
        self.path = unquote_to_bytes(raw_path).decode("latin-1")
        self.query = query.decode("latin-1")
        self.version = _VERSIONS.get(request.http_version, (1, 0))
        self.headers = [(name.decode("latin-1").upper(), value.decode("latin-1"))
                        for name, value in request.headers]
        self.remote_addr = client
        self.scheme = scheme


class ResponseView:
    """gunicorn's ``resp`` for ``post_request``."""

    def __init__(self, status_code: int, reason: str, headers: list[tuple[str, str]],
                 sent: int) -> None:
        self.status_code = status_code
        self.status = f"{status_code} {reason}".rstrip()
        self.headers = headers
        self.sent = sent


class Observation:
    """One request being watched."""

    __slots__ = ("request", "started", "view")

    def __init__(self, request: Request, view: RequestView) -> None:
        self.request = request
        self.view = view
        self.started = time.time()


def begin(protocol: Watched, request: Request) -> Observation:
    state = protocol.state
    observation = Observation(request, RequestView(request, protocol.client, protocol.scheme))
    call_hook(state.config, "pre_request", state.worker_view, observation.view)
    return observation


def end(protocol: Watched, observation: Observation, cycle: Any) -> None:
    """After the response: one access-log line, then ``post_request``."""
    state = protocol.state
    conn = protocol.conn
    response = conn.response
    if response is None:
        return  # the connection was cut before any response went out
    duration = time.time() - observation.started
    reason = response.reason.decode("latin-1") if response.reason else _phrase(
        response.status_code)
    environ = getattr(cycle, "environ", None) or getattr(cycle, "scope", None)
    view = observation.view
    if state.access_log.enabled:
        state.access_log.log(AccessRecord(
            client=protocol.client, method=view.method, raw_uri=view.uri, path=view.path,
            query=view.query, http_version=observation.request.http_version.decode("latin-1"),
            status=response.status_code, reason=reason,
            request_headers=observation.request.headers,
            response_headers=[(bytes(name).lower(), bytes(value))
                              for name, value in response.headers],
            response_body_bytes=conn.body_sent, request_start=observation.started,
            duration=duration, pid=os.getpid(),
            environ=environ if isinstance(environ, dict) and "wsgi.version" in environ else None,
        ))
    if state.config.post_request is not None:
        headers = [(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                   for name, value in response.headers]
        call_hook(state.config, "post_request", state.worker_view, view, environ,
                  ResponseView(response.status_code, reason, headers, conn.body_sent))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

"""What one worker's connections share, and the one sweep that keeps their deadlines.

``ServingState`` is made once per worker (``prefork.workers.base``) and handed to every
connection: the app and its interface, the settings read once, the live set, the counters, the
writes held for the loop's pass and the deadline sweep. ``Watched`` is what the state may use of
a connection (``prefork.workers.protocol.HttpProtocol`` is the one implementation), so this
module imports no connection.

Rule: no I/O of its own and no per-request work. No connection has a timer: the sweep acts on
every passed deadline once per ``sweep_interval`` (a quarter of the shortest timeout), because
arming and cancelling a timer per connection costs each connection more than the whole sweep.
``Watched`` is a mypyc trait for the reason ``Connection`` is one (``prefork.workers.contract``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from prefork.config import Config
from prefork.hooks import WorkerView
from prefork.http.connection import H2C_UPGRADE, ServerConnection
from prefork.http.headers import DateCache
from prefork.http.limits import Limits
from prefork.http.parsers import choose_parser
from prefork.http2.engines import Engine, engine_factory
from prefork.http2.limits import Http2Limits
from prefork.logs.access_log import AccessLog
from prefork.proxy import TrustedProxies
from prefork.workers.contract import Connection, Serving
from prefork.workers.eager import task_starter
from prefork.workers.tls_facts import server_certificate

if TYPE_CHECKING:
    from prefork.metrics.recorder import RequestRecorder

_T = TypeVar("_T")

try:
    from mypy_extensions import trait
except ImportError:  # installed without mypy: nothing is compiled, a trait is a base class
    def trait(cls: _T) -> _T:
        return cls

log = logging.getLogger("prefork.error")

# On drain, how long an idle connection may take to send its next request (answered with
# ``Connection: close``) before it is closed: a request already on the wire arrives well inside
# it, and a connection that stays idle that long is not in use.
NEXT_REQUEST_GRACE: Final = 1.0
# How long a closing connection reads and drops what the client still sends (Apache waits 2 s
# per read during its lingering close, 30 s in all; one short bound is enough here).
LINGER_TIMEOUT: Final = 2.0
# The deadline sweep's period: a quarter of the shortest timeout, within these bounds.
MIN_SWEEP_INTERVAL: Final = 0.01
MAX_SWEEP_INTERVAL: Final = 0.25
# A connection's deadline phase when no deadline runs (the others are the connection's own).
NO_DEADLINE: Final = 0
# How many engines of closed connections a worker keeps for its next connections (see
# ServingState.spare_engines): enough for a burst of closes, a few hundred KiB at most.
SPARE_ENGINES: Final = 64


@trait
class Watched(Connection):
    """What the worker's state may use of a connection: its deadlines and held writes."""

    phase: int  # what ``deadline`` means; NO_DEADLINE when none runs
    deadline: float
    send_deadline: float  # 0.0 while nothing waits on the client

    @abstractmethod
    def deadline_passed(self) -> None:
        ...

    @abstractmethod
    def send_deadline_passed(self) -> None:
        ...

    @abstractmethod
    def release_held(self) -> None:
        """Write what was held for the loop's pass."""
        ...

    @abstractmethod
    def shutdown(self) -> None:
        """The worker drains."""
        ...


@dataclass
class Counters:
    requests: int = 0
    in_flight: int = 0


class ServingState:
    """What every connection of one worker shares: the app, settings, counters, live set."""

    def __init__(self, config: Config, app: Any, serving: Serving,
                 on_request_done: Callable[[int], None], *, counting_requests: bool = False,
                 access_log: AccessLog | None = None, worker_view: WorkerView | None = None,
                 metrics: RequestRecorder | None = None) -> None:
        """``serving`` makes the cycles (the app interface); ``on_request_done`` hears of each
        finished request while ``counting_requests`` or ``--max-requests`` asks for it;
        ``worker_view`` is the hooks' ``worker``; ``metrics`` records each response (None:
        neither --metrics-bind nor --statsd-host)."""
        self.config = config
        self.app = app
        self.serving = serving
        self.on_request_done = on_request_done
        self.counting_requests = counting_requests or bool(config.max_requests)
        self.limits = Limits(
            max_request_line=config.limit_request_line,
            max_headers=config.limit_request_fields,
            max_header_size=config.limit_request_field_size,
            max_body_size=config.limit_request_body or None,
            keep_alive_timeout=config.keepalive or 0.001,
            headers_timeout=config.headers_timeout,
            body_timeout=config.body_timeout,
        )
        self.send_timeout = config.send_timeout
        # Read by every new connection: Config is an interpreted class, and an attribute of it
        # costs a compiled caller an attribute lookup by name (0.2k instructions each).
        self.worker_connections = config.worker_connections
        self.date_header = config.date_header
        # --http2: the limits of each HTTP/2 connection (None: HTTP/2 is not served); without
        # TLS, by the preface (prior knowledge) and/or by Upgrade: h2c, as --http2-cleartext says
        self.http2: Http2Limits | None = None
        self.h2_engine: Callable[[Http2Limits], Engine] | None = None
        self.h2_prior_knowledge = False
        upgrades = serving.upgrades
        if config.http2:
            self.http2 = Http2Limits(
                max_concurrent_streams=config.http2_max_concurrent_streams,
                initial_window_size=config.http2_initial_window_size,
                max_frame_size=config.http2_max_frame_size,
                max_header_list_size=config.http2_max_header_list_size)
            self.h2_engine = engine_factory(config.http2_engine)
            cleartext = config.http2_cleartext
            self.h2_prior_knowledge = cleartext in ("prior-knowledge", "both")
            if cleartext in ("upgrade", "both"):
                upgrades = upgrades | H2C_UPGRADE
        self.upgrades = upgrades
        self.websockets = b"websocket" in serving.upgrades
        self.forwarded_client = serving.forwarded_client
        self.parser = choose_parser(config.http)
        self.server_header: bytes | None = b"prefork" if config.server_header else None
        self.date_cache = DateCache(time.time)  # one Date line per second per worker
        # Engines (each with its tokenizer and llhttp parser) of connections that closed between
        # two messages, reset and kept for the next connections: making and freeing them was a
        # tenth of a Connection: close request's cost. A closed connection's protocol keeps
        # ``gone_engine`` instead, one that refuses to send, so that an app that still holds
        # the connection's cycle can never write through an engine another client now uses.
        self.spare_engines: list[ServerConnection] = []
        self.gone_engine = ServerConnection(self.limits, parser=self.parser,
                                            server_header=None, date_header=False,
                                            upgrades=self.upgrades)
        self.gone_engine.release()
        self.connections: set[Watched] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # the loop only keeps weak references
        self.counters = Counters()
        # --limit-concurrency: past this many requests in flight, a new one gets 503
        self.max_in_flight = config.limit_concurrency or sys.maxsize
        self.access_log = access_log if access_log is not None else AccessLog(None)
        self.worker_view = worker_view
        # an access log or a pre/post_request hook: only then is each request observed
        self.observing = bool(self.access_log.enabled or config.pre_request
                              or config.post_request)
        self.metrics = metrics
        self.draining = False
        # --shutdown-delay announced: the health path answers 503 while requests are still
        # served; each connection closes after its current response so clients move on.
        self.unready = False
        self.closing_connections = False  # draining or unready
        self.health_path: bytes | None = (config.health_path.encode("latin-1")
                                          if config.health_path else None)
        self.native_sendfile = True  # until the loop says it has no loop.sendfile
        # --certfile: only then can a connection be TLS (and is asked whether it is)
        self.tls = bool(config.certfile)
        # the ASGI tls extension's server_cert, read once per worker (prefork.workers.tls_facts)
        self.server_cert = server_certificate(config.certfile) if self.tls else None
        self.trusted_proxies = (TrustedProxies.parse(config.forwarded_allow_ips)
                                if config.proxy_headers else None)
        # --proxy-protocol: the balancers that must send a PROXY header (None: feature off)
        self.proxy_senders = (TrustedProxies.parse(config.proxy_allow_ips)
                              if config.proxy_protocol else None)
        # On 3.11 asyncio.get_running_loop() makes a getpid() system call each time: the
        # worker's loop is asked once, here, and each connection takes it from the state.
        self.loop = asyncio.get_running_loop()
        # Runs each request coroutine's first step at once (prefork.workers.eager).
        self.starter = task_starter(self.loop)
        self.start_task = self.starter.start
        self._holding: list[Watched] = []  # connections with held writes
        # bound once: each pass that holds writes schedules it (0.3k instructions to bind anew)
        self._release_bound = self._release_writes
        shortest = min(self.limits.keep_alive_timeout, self.limits.headers_timeout,
                       self.limits.body_timeout, self.send_timeout, NEXT_REQUEST_GRACE,
                       LINGER_TIMEOUT)
        self.sweep_interval = max(MIN_SWEEP_INTERVAL, min(MAX_SWEEP_INTERVAL, shortest / 4))
        self.sweeping = False

    def watch(self, protocol: Watched) -> None:
        """Count ``protocol`` among the connections whose deadlines the sweep checks."""
        self.connections.add(protocol)
        if not self.sweeping:
            self.sweeping = True
            self.loop.call_later(self.sweep_interval, self.sweep)

    def sweep(self) -> None:
        """Act on every deadline that passed; again after ``sweep_interval`` while any
        connection is open (an idle worker is not woken)."""
        connections = self.connections
        if not connections:
            self.sweeping = False
            return
        now = self.loop.time()
        # a copy: acting on a deadline closes connections, which leave the set
        for protocol in list(connections):
            try:
                if protocol.phase != NO_DEADLINE and protocol.deadline <= now:
                    protocol.deadline_passed()
                send_deadline = protocol.send_deadline
                if send_deadline and send_deadline <= now:
                    protocol.send_deadline_passed()
            except Exception:  # one broken connection must not stop the others' deadlines
                log.exception("closing %s after its deadline failed", protocol.client)
        self.loop.call_later(self.sweep_interval, self.sweep)

    def hold_writes(self, protocol: Watched) -> None:
        """Release ``protocol``'s held writes once the loop's current pass is over."""
        holding = self._holding
        if not holding:
            self.loop.call_soon(self._release_bound)
        holding.append(protocol)

    def _release_writes(self) -> None:
        holding = self._holding
        self._holding = []
        for protocol in holding:
            try:
                protocol.release_held()
            except Exception:  # one broken transport must not keep the others' answers back
                log.exception("writing a held answer to %s failed", protocol.client)


def listener_address(sock: socket.socket) -> tuple[str, int] | None:
    """What ``HttpProtocol``'s ``local`` should be for the connections ``sock`` accepts: its
    address when it is bound to a specific IP address, None for a wildcard or unix one."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    address = socket_address(sock.getsockname())
    if address is None or address[0] in ("0.0.0.0", "::"):
        return None
    return address


def socket_address(value: Any) -> tuple[str, int] | None:
    """(host, port) of a socket address; None for a unix socket's path."""
    if type(value) is tuple:
        if len(value) == 2 and type(value[1]) is int:
            return value  # IPv4, as the loop gives it: used as it is, no copy
        if len(value) >= 2:  # IPv6 (host, port, flowinfo, scope_id)
            return str(value[0]), int(value[1])
    return None

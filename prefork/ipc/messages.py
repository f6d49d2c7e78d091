"""Messages between the arbiter and a worker, and between an embedder and the arbiter.

Each is a frozen dataclass with a ``KIND`` byte, encoded by :mod:`prefork.ipc.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from prefork.ipc.codec import message

# -- worker -> arbiter -------------------------------------------------------------------------


@message
@dataclass(frozen=True, slots=True)
class Ready:
    """The worker loaded the app, ran lifespan startup and is serving."""

    KIND: ClassVar[int] = 1
    pid: int


@message
@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent from the worker's event loop; its absence past --timeout means the loop is stuck."""

    KIND: ClassVar[int] = 2
    requests: int
    in_flight: int
    connections: int


@message
@dataclass(frozen=True, slots=True)
class BootFailed:
    """The worker could not start; ``reason`` is one line for the log and the exit message."""

    KIND: ClassVar[int] = 3
    reason: str


@message
@dataclass(frozen=True, slots=True)
class Retiring:
    """The worker reached a recycling limit and asks for a replacement before it drains."""

    KIND: ClassVar[int] = 4
    reason: str


@message
@dataclass(frozen=True, slots=True)
class AppMessage:
    """``prefork.worker.send(obj)`` from app code, for the ``on_message`` hook (JSON data)."""

    KIND: ClassVar[int] = 5
    data: Any


@message
@dataclass(frozen=True, slots=True)
class BroadcastRequest:
    """``prefork.worker.broadcast(obj)``: the arbiter relays it to every worker."""

    KIND: ClassVar[int] = 6
    data: Any


# -- arbiter -> worker -------------------------------------------------------------------------


@message
@dataclass(frozen=True, slots=True)
class Connections:
    """Accepted client sockets travel as SCM_RIGHTS fds with this frame (roundrobin dispatch)."""

    KIND: ClassVar[int] = 10
    count: int


@message
@dataclass(frozen=True, slots=True)
class Drain:
    """Stop accepting, finish in-flight requests, then exit (the channel form of SIGTERM)."""

    KIND: ClassVar[int] = 11


@message
@dataclass(frozen=True, slots=True)
class Broadcast:
    """A relayed ``prefork.worker.broadcast(obj)``, for every worker's ``on_broadcast``."""

    KIND: ClassVar[int] = 12
    data: Any
    origin: int  # pid of the worker that broadcast it


@message
@dataclass(frozen=True, slots=True)
class Unready:
    """Shutdown is coming (--shutdown-delay): fail the health path, keep serving."""

    KIND: ClassVar[int] = 13


# -- embedder <-> arbiter ------------------------------------------------------------------------


@message
@dataclass(frozen=True, slots=True)
class Command:
    """A request from ``prefork.Server`` to its arbiter: stats, reload, scale, stop."""

    KIND: ClassVar[int] = 20
    name: str
    argument: int = 0


@message
@dataclass(frozen=True, slots=True)
class Reply:
    """The arbiter's answer to a :class:`Command`, or an unsolicited status update."""

    KIND: ClassVar[int] = 21
    name: str
    data: dict[str, Any] = field(default_factory=dict)

"""Messages between the arbiter and a worker, and between an embedder and the arbiter.

Each has a ``KIND`` byte and is encoded by :mod:`prefork.ipc.codec`. They behave as frozen
dataclasses with slots (equal and hashed by field, shown by field, no assignment after
``__init__``), but are written out on :class:`FrozenMessage`: a frozen dataclass with slots
costs every start-up about 1 ms to generate, and every arbiter imports these twelve.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, ClassVar

from prefork.ipc.codec import message


class FrozenMessage:
    """The fields are ``__slots__``; subclasses set them in ``__init__`` with
    ``object.__setattr__``."""

    __slots__: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[int]

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, for the codec."""
        return {name: getattr(self, name) for name in self.__slots__}

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, FrozenMessage)
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


# -- worker -> arbiter -------------------------------------------------------------------------


@message
class Ready(FrozenMessage):
    """The worker loaded the app, ran lifespan startup and is serving."""

    KIND: ClassVar[int] = 1
    __slots__ = ("pid",)
    pid: int

    def __init__(self, pid: int) -> None:
        object.__setattr__(self, "pid", pid)


@message
class Heartbeat(FrozenMessage):
    """Sent from the worker's event loop; its absence past --timeout means the loop is stuck."""

    KIND: ClassVar[int] = 2
    __slots__ = ("requests", "in_flight", "connections")  # noqa: RUF023  # field order
    requests: int
    in_flight: int
    connections: int

    def __init__(self, requests: int, in_flight: int, connections: int) -> None:
        object.__setattr__(self, "requests", requests)
        object.__setattr__(self, "in_flight", in_flight)
        object.__setattr__(self, "connections", connections)


@message
class BootFailed(FrozenMessage):
    """The worker could not start; ``reason`` is one line for the log and the exit message,
    ``details`` the app's traceback, if any (the arbiter logs it once for repeated failures)."""

    KIND: ClassVar[int] = 3
    __slots__ = ("reason", "details")  # noqa: RUF023  # field order
    reason: str
    details: str

    def __init__(self, reason: str, details: str = "") -> None:
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "details", details)


@message
class Retiring(FrozenMessage):
    """The worker reached a recycling limit and asks for a replacement before it drains."""

    KIND: ClassVar[int] = 4
    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)


@message
class AppMessage(FrozenMessage):
    """``prefork.messages.send(obj)`` from app code, for the ``on_message`` hook (JSON data)."""

    KIND: ClassVar[int] = 5
    __slots__ = ("data",)
    data: Any

    def __init__(self, data: Any) -> None:
        object.__setattr__(self, "data", data)


@message
class BroadcastRequest(FrozenMessage):
    """``prefork.messages.broadcast(obj)``: the arbiter relays it to every worker."""

    KIND: ClassVar[int] = 6
    __slots__ = ("data",)
    data: Any

    def __init__(self, data: Any) -> None:
        object.__setattr__(self, "data", data)


# -- arbiter -> worker -------------------------------------------------------------------------


@message
class Connections(FrozenMessage):
    """Accepted client sockets travel as SCM_RIGHTS fds with this frame (roundrobin dispatch)."""

    KIND: ClassVar[int] = 10
    __slots__ = ("count",)
    count: int

    def __init__(self, count: int) -> None:
        object.__setattr__(self, "count", count)


@message
class Drain(FrozenMessage):
    """Stop accepting, finish in-flight requests, then exit (the channel form of SIGTERM)."""

    KIND: ClassVar[int] = 11
    __slots__ = ()


@message
class Broadcast(FrozenMessage):
    """A relayed ``prefork.messages.broadcast(obj)``, for every worker's ``on_broadcast``."""

    KIND: ClassVar[int] = 12
    __slots__ = ("data", "origin")
    data: Any
    origin: int  # pid of the worker that broadcast it

    def __init__(self, data: Any, origin: int) -> None:
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "origin", origin)


@message
class Unready(FrozenMessage):
    """Shutdown is coming (--shutdown-delay): fail the health path, keep serving."""

    KIND: ClassVar[int] = 13
    __slots__ = ()


# -- embedder <-> arbiter ------------------------------------------------------------------------


@message
class Command(FrozenMessage):
    """A request from ``prefork.Server`` to its arbiter: stats, reload, scale, stop."""

    KIND: ClassVar[int] = 20
    __slots__ = ("name", "argument")  # noqa: RUF023  # field order
    name: str
    argument: int

    def __init__(self, name: str, argument: int = 0) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "argument", argument)


@message
class Reply(FrozenMessage):
    """The arbiter's answer to a :class:`Command`, or an unsolicited status update."""

    KIND: ClassVar[int] = 21
    __slots__ = ("name", "data")  # noqa: RUF023  # field order
    name: str
    data: dict[str, Any]

    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "data", {} if data is None else data)

"""Messages between app code and the arbiter: ``send``, ``broadcast`` and ``on_broadcast``.

App code running in a prefork worker can talk to the process that supervises it::

    import prefork.messages

    prefork.messages.send({"event": "login", "user": "ada"})   # the arbiter's on_message hook
    prefork.messages.broadcast({"invalidate": "user:42"})      # every worker's on_broadcast

    @prefork.messages.on_broadcast
    def forget(message, origin):
        cache.pop(message.get("invalidate"), None)

Delivery is best effort, as a UDP datagram is: each message is one JSON frame on the worker's
non-blocking control channel (``prefork.ipc``). ``send`` and ``broadcast`` return False instead
of waiting or raising when the frame cannot go (not in a worker, the arbiter gone, its buffer
full), and the arbiter drops a relayed broadcast for any worker whose buffer is full, so an app
that broadcasts in a loop costs the arbiter one JSON encode per worker and message, never a
blocked loop. Every worker receives a broadcast, its sender included, so an invalidation runs
the same code everywhere; ``origin`` names the sender's pid (the arbiter's for
``server.broadcast`` from a hook).

Data must be JSON (``TypeError`` otherwise, at the call) and at most :data:`MAX_PAYLOAD` bytes
encoded (``ValueError``): a Unix datagram must fit the socket's send buffer whole, 212,992 bytes
by default on Linux (a 220,000-byte frame fails with EMSGSIZE), and a small limit leaves room
for several messages in flight. It arrives as JSON gives it back: tuples become lists, dict
keys become strings.

The link to the arbiter is per process by nature, so it lives in this module: the worker
attaches it at boot (:func:`attach_worker`) and it is None everywhere else, the test process
included. A process forked by app code inherits the channel but not the right to use it:
``send`` checks the pid. Sending is safe from any thread: each frame is a single ``send(2)``
of one datagram, which the kernel never interleaves with another. Received broadcasts run on
the worker's event loop thread; a callback that raises is logged, and one that returns a
coroutine is run as a task.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from prefork.config import Config
from prefork.hooks import WorkerView, call_hook
from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import AppMessage, Broadcast, BroadcastRequest
from prefork.logs.error_log import ERROR_LOGGER

__all__ = ["MAX_PAYLOAD", "broadcast", "on_broadcast", "pid", "send", "slot"]

MAX_PAYLOAD = 64 * 1024  # bytes of encoded JSON; see the module docstring for why

Listener = Callable[[Any, int], object]
L = TypeVar("L", bound=Listener)

if TYPE_CHECKING:
    import asyncio

    pid: int | None  # this worker's pid; None outside a prefork worker
    slot: int | None  # this worker's slot (0 .. workers-1); None outside a prefork worker


def check_payload(data: Any) -> int:
    """The encoded size of ``data``; TypeError if it is not JSON, ValueError if it is too big."""
    try:
        encoded = json.dumps(data, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # ValueError: a circular reference
        raise TypeError(f"prefork.messages messages must be JSON data: {exc}") from None
    if len(encoded) > MAX_PAYLOAD:  # ensure_ascii: one character is one byte
        raise ValueError(f"prefork.messages message of {len(encoded)} bytes is over the "
                         f"{MAX_PAYLOAD}-byte limit; send a key, not the data")
    return len(encoded)


class WorkerLink:
    """One worker's end of its arbiter channel, as app code uses it."""

    def __init__(self, channel: Channel, view: WorkerView, config: Config,
                 listeners: list[Listener], log: logging.Logger) -> None:
        self.channel = channel
        self.view = view
        self.config = config
        self.listeners = listeners
        self.log = log
        self.pid = os.getpid()
        self.slot = view.slot
        self._tasks: set[asyncio.Task[Any]] = set()  # coroutine listeners still running

    def send(self, data: Any) -> bool:
        """Queue ``AppMessage(data)`` for the arbiter; False when it could not go."""
        return self._send(AppMessage(data=data))

    def broadcast(self, data: Any) -> bool:
        """Ask the arbiter to relay ``data`` to every worker; False when it could not go."""
        return self._send(BroadcastRequest(data=data))

    def _send(self, msg: AppMessage | BroadcastRequest) -> bool:
        check_payload(msg.data)
        if os.getpid() != self.pid:
            return False  # a child of the worker: the arbiter would take it for the worker
        try:
            return self.channel.send(msg)
        except ChannelClosed:
            return False

    def deliver(self, msg: Broadcast) -> None:
        """Run the ``on_broadcast`` hook, then each listener; on the event loop thread."""
        import asyncio  # loaded in every worker; the arbiter, which relays, never needs it

        call_hook(self.config, "on_broadcast", self.view, msg.data, log=self.log)
        for listener in list(self.listeners):
            try:
                result = listener(msg.data, msg.origin)
            except Exception:
                self.log.exception("on_broadcast listener %s raised", _name(listener))
                continue
            if asyncio.iscoroutine(result):
                task = asyncio.get_running_loop().create_task(result, name=_name(listener))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("on_broadcast listener %s raised", task.get_name(),
                           exc_info=task.exception())


# -- this process --------------------------------------------------------------------------------

_listeners: list[Listener] = []
_link: WorkerLink | None = None


def attach_worker(channel: Channel, view: WorkerView, config: Config) -> WorkerLink:
    """Called once by a worker at boot, before the app is imported."""
    global _link
    _link = WorkerLink(channel, view, config, _listeners, logging.getLogger(ERROR_LOGGER))
    return _link


def deliver_broadcast(msg: Broadcast) -> None:
    """Called by the worker for each ``Broadcast`` frame from the arbiter."""
    if _link is not None:
        _link.deliver(msg)


def _current() -> WorkerLink | None:
    return _link if _link is not None and _link.pid == os.getpid() else None


def send(obj: Any) -> bool:
    """Send ``obj`` to the arbiter's ``on_message(server, worker, obj)`` hook.

    Returns False, without waiting, when it could not be queued: not inside a prefork worker,
    the arbiter gone, or its channel full. Raises TypeError if ``obj`` is not JSON data and
    ValueError if it encodes to more than :data:`MAX_PAYLOAD` bytes. Safe from any thread.
    """
    link = _current()
    if link is None:
        check_payload(obj)
        return False
    return link.send(obj)


def broadcast(obj: Any) -> bool:
    """Have the arbiter relay ``obj`` to every worker, this one included, where it reaches the
    ``on_broadcast`` hook and the :func:`on_broadcast` listeners.

    True means the arbiter was handed the request, not that every worker got it. Returns and
    raises as :func:`send` does.
    """
    link = _current()
    if link is None:
        check_payload(obj)
        return False
    return link.broadcast(obj)


def on_broadcast(callback: L) -> L:
    """Register ``callback(obj, origin)`` for every broadcast this worker receives; usable as a
    decorator. It runs on the worker's event loop thread, so keep it short; an ``async def``
    callback runs as a task. Register at import time so no broadcast is missed."""
    _listeners.append(callback)
    return callback


def __getattr__(name: str) -> Any:
    if name == "pid":
        link = _current()
        return link.pid if link else None
    if name == "slot":
        link = _current()
        return link.slot if link else None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", repr(listener))

"""The link to the process that embeds the arbiter (``prefork.Server``): its commands, the
arbiter's replies, and the one "ready" announcement.

Rule: one command, one operation on the arbiter and one reply (none for a name it does not
know); an operation that refuses (a scale above ``max_workers``, a pid that is no worker)
is answered with its error, and the arbiter serves on. A reply to an embedder already gone is
dropped: the end of its channel is what tells the arbiter it is gone.
"""

from __future__ import annotations

import contextlib
import selectors
from collections.abc import Callable
from typing import Any, Protocol

from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import Command, Reply


class EmbeddedOperations(Protocol):
    """What the embedder's commands do to the arbiter."""

    target: int

    def stats(self) -> dict[str, Any]: ...

    def reload(self) -> list[int]: ...

    def scale(self, count: int) -> None:
        """Raises ValueError for a count above ``max_workers``."""

    def begin_stop(self, graceful: bool) -> None: ...

    def recycle(self, pid: int | None = None) -> list[int]:
        """Raises LookupError for a pid that is not a live worker."""


def carry_out(command: Command, arbiter: EmbeddedOperations) -> tuple[str, dict[str, Any]] | None:
    """Do ``command``; the reply's name and data, or None for a command without one."""
    if command.name == "stats":
        return "stats", arbiter.stats()
    if command.name == "reload":
        arbiter.reload()
        return "reload", {}
    if command.name == "scale":
        try:
            arbiter.scale(command.argument)
        except ValueError as exc:
            return "scale", {"target": arbiter.target, "error": str(exc)}
        return "scale", {"target": arbiter.target}
    if command.name == "stop":
        arbiter.begin_stop(graceful=bool(command.argument))
        return "stop", {}
    if command.name == "recycle":  # argument: a worker's pid, 0 for all
        try:
            return "recycle", {"recycling": arbiter.recycle(command.argument or None)}
        except LookupError as exc:
            return "recycle", {"error": str(exc)}
    return None


class EmbedderLink:
    """The embedder's channel while it is there (``channel`` is None without an embedder)."""

    def __init__(self, channel: Channel | None) -> None:
        self.channel = channel
        self.ready_announced = False

    def watch(self, selector: selectors.BaseSelector,
              on_readable: Callable[[selectors.SelectorKey], None]) -> None:
        if self.channel is not None:
            selector.register(self.channel.sock, selectors.EVENT_READ, on_readable)

    def commands(self, selector: selectors.BaseSelector) -> list[Command] | None:
        """The commands received; None once the embedder is gone (its channel is then closed
        and no longer watched by ``selector``)."""
        assert self.channel is not None
        try:
            messages = self.channel.receive()
        except ChannelClosed:
            selector.unregister(self.channel.sock)
            self.close()
            return None
        return [msg for msg, _fds in messages if isinstance(msg, Command)]

    def reply(self, name: str, data: dict[str, Any]) -> None:
        if self.channel is not None:
            with contextlib.suppress(ChannelClosed):
                self.channel.send(Reply(name=name, data=data))

    def announce_ready(self, all_serving: bool, stats: Callable[[], dict[str, Any]]) -> None:
        """Say "ready" once, the first time every worker serves."""
        if self.ready_announced or self.channel is None or not all_serving:
            return
        self.ready_announced = True
        self.reply("ready", stats())

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

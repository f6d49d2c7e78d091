"""The commands of the process that embeds the arbiter (``prefork.Server``), and their answers.

Rule: one command, one operation on the arbiter and one reply (none for a name it does not
know); an operation that refuses (a scale above ``max_workers``, a pid that is no worker)
is answered with its error, and the arbiter serves on.
"""

from __future__ import annotations

from typing import Any, Protocol

from prefork.ipc.messages import Command


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

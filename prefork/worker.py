"""The name app code used for :mod:`prefork.messages` before it had its own: ``import
prefork.worker`` then ``prefork.worker.send(...)`` keeps working, with no warning.

New code imports :mod:`prefork.messages`; this module only forwards to it.
"""

from __future__ import annotations

from typing import Any

from prefork import messages
from prefork.messages import MAX_PAYLOAD, broadcast, on_broadcast, send

__all__ = ["MAX_PAYLOAD", "broadcast", "on_broadcast", "send"]  # and pid, slot: see below


def __getattr__(name: str) -> Any:
    return getattr(messages, name)  # ``pid`` and ``slot`` are read afresh on each access

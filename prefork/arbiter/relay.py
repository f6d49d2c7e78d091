"""The arbiter's half of ``prefork.messages.broadcast``: pass one worker's broadcast to all.

The app-facing half (``send``, ``broadcast``, ``on_broadcast``) runs in the workers and lives in
:mod:`prefork.messages`; both check a payload with the same :func:`check_payload`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import Broadcast
from prefork.messages import check_payload


def relay_broadcast(channels: Iterable[tuple[int, Channel]], data: Any, origin: int,
                    log: logging.Logger) -> int:
    """The arbiter's half: send ``Broadcast(data, origin)`` to each (pid, channel); how many
    took it. A full or closed channel is skipped: the message is best effort, and the arbiter
    must not wait on a worker that stopped reading."""
    check_payload(data)
    msg = Broadcast(data=data, origin=origin)
    reached = 0
    for worker_pid, channel in channels:
        try:
            if channel.send(msg):
                reached += 1
            else:
                log.debug("broadcast from %d dropped for worker %d: its channel is full",
                          origin, worker_pid)
        except ChannelClosed:
            log.debug("broadcast from %d not sent to worker %d: its channel is closed",
                      origin, worker_pid)
    return reached

"""What the arbiter knows of its workers: one record per live process, kept in a table by pid,
and one history per slot.

Rule: these are plain data and pure readings of it (a record's figures, how an exit status
reads); they send no signal and touch no socket. The arbiter alone changes them. They are plain
classes: a dataclass costs every start-up about 1 ms to generate.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefork.arbiter.supervision import WorkerState
from prefork.errors import (
    WORKER_EXIT_ABORTED,
    WORKER_EXIT_APP_LOAD_FAILED,
    WORKER_EXIT_BOOT_FAILED,
    WORKER_EXIT_ORPHANED,
)
from prefork.ipc.channel import Channel
from prefork.system.procstat import ProcessSample

if TYPE_CHECKING:
    from prefork.hooks import WorkerView
    from prefork.metrics.store import MetricBlock


class PendingFork:
    """A worker about to be forked into ``slot``: its channel's two ends, the listening sockets
    it keeps, its view, its metrics block, and what its child runs once it is a worker."""

    __slots__ = ("arbiter_end", "block", "slot", "slot_sockets", "start_worker", "view",
                 "worker_end")

    def __init__(self, slot: int, arbiter_end: Channel, worker_end: Channel,
                 slot_sockets: list[socket.socket], view: WorkerView, block: MetricBlock | None,
                 start_worker: Callable[[], int]) -> None:
        self.slot = slot
        self.arbiter_end = arbiter_end
        self.worker_end = worker_end
        self.slot_sockets = slot_sockets
        self.view = view
        self.block = block
        self.start_worker = start_worker

    def abandon(self) -> None:
        """In another worker of the batch, or when the fork failed: close what was made for it."""
        self.arbiter_end.close()
        self.worker_end.close()
        if self.block is not None:
            self.block.close()


class WorkerRecord:
    """What the arbiter knows of one worker process."""

    def __init__(self, pid: int, slot: int, channel: Channel, started_at: float,
                 last_seen: float, restarts: int = 0, age: int = 0) -> None:
        self.pid = pid
        self.slot = slot
        self.channel = channel
        self.started_at = started_at
        self.last_seen = last_seen
        self.restarts = restarts
        self.age = age  # spawn counter, gunicorn's worker.age
        self.state = WorkerState.BOOTING
        self.ready_at: float | None = None
        self.stop_requested = False  # we asked it to stop: its exit is not a crash
        self.stop_deadline: float | None = None
        self.abort_sent_at: float | None = None
        self.retiring = False  # asked for a replacement (max-requests)
        self.reloading = False  # forked by a reload and not ready yet: its failure fails it
        self.boot_reason = ""
        self.boot_details = ""  # the app's traceback, when it failed to load
        self.requests = 0
        self.in_flight = 0
        self.connections = 0
        self.channel_open = True
        self.sample: ProcessSample | None = None  # the latest /proc sample (SAMPLE_INTERVAL)
        self.sampled_at = 0.0
        self.cpu_percent = 0.0

    @property
    def rss(self) -> int:
        return self.sample.rss if self.sample else 0

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "pid": self.pid, "slot": self.slot, "state": self.state.value,
            "uptime": round(now - self.started_at, 3), "requests": self.requests,
            "in_flight": self.in_flight, "connections": self.connections,
            "rss": self.rss, "cpu_percent": round(self.cpu_percent, 1),
            "restarts": self.restarts, "retiring": self.retiring,
        }


class WorkerTable(dict[int, WorkerRecord]):
    """The live workers by pid, and the questions the arbiter asks of them."""

    def active(self) -> list[WorkerRecord]:
        """Neither asked to stop nor waiting for a replacement."""
        return [w for w in self.values() if not w.stop_requested and not w.retiring]

    def in_slot(self, slot: int) -> list[WorkerRecord]:
        """The workers of ``slot`` not asked to stop (a retiring one and its replacement)."""
        return [w for w in self.values() if w.slot == slot and not w.stop_requested]

    def slot_is_filled(self, slot: int) -> bool:
        return any(not w.retiring for w in self.in_slot(slot))

    def serving(self) -> list[WorkerRecord]:
        """Those that take connections, in slot order."""
        return sorted((w for w in self.values()
                       if w.state is WorkerState.SERVING and not w.stop_requested
                       and w.channel_open), key=by_slot)

    def booting(self) -> int:
        """How many have not said they are ready yet."""
        return sum(1 for w in self.values() if w.state is WorkerState.BOOTING)


class SlotHistory:
    """What outlives the workers of one slot: its restarts and how the last one ended."""

    def __init__(self) -> None:
        self.restarts = 0
        self.last_exit = ""
        self.next_fork_at = 0.0


def by_slot(worker: WorkerRecord) -> tuple[int, float]:
    """Sort key: by slot, the older worker of a slot first."""
    return worker.slot, worker.started_at


EXIT_MEANINGS = {
    WORKER_EXIT_BOOT_FAILED: "boot failed",
    WORKER_EXIT_APP_LOAD_FAILED: "application failed to load",
    WORKER_EXIT_ORPHANED: "arbiter gone",
    WORKER_EXIT_ABORTED: "aborted on SIGABRT",
}


def describe_status(status: int) -> str:
    """A ``waitpid`` status in words: the signal that killed it, or the exit code's meaning."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    code = os.waitstatus_to_exitcode(status)
    meaning = EXIT_MEANINGS.get(code)
    return f"exit code {code}, {meaning}" if meaning else f"exit code {code}"

"""When a worker has lived long enough: ``--max-worker-lifetime`` and ``--max-worker-memory``.

The arbiter samples each worker's resident memory once a second (``prefork.system.procstat``)
and asks :meth:`RecyclePolicy.review` which serving workers are due for a rolling replacement;
it then queues them exactly like a worker that reached ``--max-requests`` (which the worker
itself counts and reports). Each worker gets its own jitter, drawn once when the policy first
sees it, so workers started together do not all retire together.

A memory limit is judged on consecutive samples: one sample over the limit can be a request's
short-lived buffer that the allocator hands back a moment later; three in a row (three seconds)
is memory the worker keeps.

Between the arbiter's samples a worker also checks itself after its requests
(:mod:`prefork.workers.memory_check`).

Rule: this module is pure. It does no I/O, reads no clock (the arbiter passes each worker's age
and the time of its latest sample) and draws randomness only through the injected ``draw``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from prefork.config import Config

from prefork.system.procstat import MIB

__all__ = ["MEMORY_SAMPLES_OVER", "RecycleLimits", "RecyclePolicy", "WorkerFacts"]

MEMORY_SAMPLES_OVER = 3  # consecutive samples over the limit before a worker is retired


class RecycleLimits(NamedTuple):
    """The recycling settings; 0 turns a limit off. Seconds and bytes."""

    max_lifetime: float = 0.0
    lifetime_jitter: float = 0.0
    max_memory: int = 0
    memory_jitter: int = 0

    @classmethod
    def from_config(cls, config: Config) -> RecycleLimits:
        """The limits of a :class:`prefork.config.Config` (memory settings are in MB)."""
        return cls(
            max_lifetime=config.max_worker_lifetime,
            lifetime_jitter=config.max_worker_lifetime_jitter,
            max_memory=int(config.max_worker_memory * MIB),
            memory_jitter=int(config.max_worker_memory_jitter * MIB),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.max_lifetime or self.max_memory)


class WorkerFacts(NamedTuple):
    """What the arbiter knows of one serving worker at review time."""

    pid: int
    age: float  # seconds since it was forked
    rss: int  # bytes, from the latest sample (0 before the first one)
    sampled_at: float  # when that sample was taken; a new value means a new sample


class _Tracked:
    __slots__ = ("last_sample", "lifetime_share", "memory_share", "samples_over")

    def __init__(self, lifetime_share: float, memory_share: float) -> None:
        self.lifetime_share = lifetime_share  # this worker's share of the jitter, 0.0 .. 1.0
        self.memory_share = memory_share  # drawn once, when the policy first sees the worker
        self.samples_over = 0
        self.last_sample: float | None = None


class RecyclePolicy:
    """Decides which workers retire; remembers per-worker jitter and memory streaks."""

    def __init__(self, draw: Callable[[], float] = random.random) -> None:
        self._draw = draw
        self._tracked: dict[int, _Tracked] = {}

    def review(self, workers: Iterable[WorkerFacts],
               limits: RecycleLimits) -> list[tuple[int, str]]:
        """``(pid, reason)`` for every worker due for replacement, in the order given.

        Pass every worker that could be retired (serving, not already queued); a worker left
        out is forgotten, so one that is retired is not reported again.
        """
        workers = list(workers)
        present = {worker.pid for worker in workers}
        for pid in [pid for pid in self._tracked if pid not in present]:
            del self._tracked[pid]
        if not limits.enabled:
            return []
        due: list[tuple[int, str]] = []
        for worker in workers:
            tracked = self._tracked.get(worker.pid)
            if tracked is None:
                tracked = self._tracked[worker.pid] = _Tracked(self._draw(), self._draw())
            reason = (self._lifetime_reason(worker, tracked, limits)
                      or self._memory_reason(worker, tracked, limits))
            if reason:
                due.append((worker.pid, reason))
        return due

    @staticmethod
    def _lifetime_reason(worker: WorkerFacts, tracked: _Tracked,
                         limits: RecycleLimits) -> str | None:
        limit = _lifetime_limit(tracked, limits)
        if not limit or worker.age < limit:
            return None
        return f"lived {worker.age:.0f}s, limit {limit:.0f}s (max-worker-lifetime)"

    @staticmethod
    def _memory_reason(worker: WorkerFacts, tracked: _Tracked,
                       limits: RecycleLimits) -> str | None:
        limit = _memory_limit(tracked, limits)
        if not limit or worker.rss == 0 or worker.sampled_at == tracked.last_sample:
            return None  # no limit, no sample yet, or this sample was already judged
        tracked.last_sample = worker.sampled_at
        tracked.samples_over = tracked.samples_over + 1 if worker.rss > limit else 0
        if tracked.samples_over < MEMORY_SAMPLES_OVER:
            return None
        return (f"RSS {worker.rss / MIB:.0f} MB over {limit / MIB:.0f} MB for "
                f"{tracked.samples_over} samples (max-worker-memory)")


def _lifetime_limit(tracked: _Tracked, limits: RecycleLimits) -> float:
    if not limits.max_lifetime:
        return 0.0
    return limits.max_lifetime + tracked.lifetime_share * limits.lifetime_jitter


def _memory_limit(tracked: _Tracked, limits: RecycleLimits) -> int:
    if not limits.max_memory:
        return 0
    return limits.max_memory + int(tracked.memory_share * limits.memory_jitter)

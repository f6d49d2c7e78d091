"""When a worker has lived long enough: ``--max-worker-lifetime`` and ``--max-worker-memory``.

The arbiter samples each worker's resident memory once a second (``prefork.procstat``) and asks
:meth:`RecyclePolicy.review` which serving workers are due for a rolling replacement; it then
queues them exactly like a worker that reached ``--max-requests`` (which the worker itself counts
and reports). Each worker gets its own jitter, drawn once when the policy first sees it, so
workers started together do not all retire together.

A memory limit is judged on consecutive samples: one sample over the limit can be a request's
short-lived buffer that the allocator hands back a moment later; three in a row (three seconds)
is memory the worker keeps.

Between the arbiter's samples a worker can grow by whatever its requests allocate (an app that
kept 20 MB a request was retired near 700 MB under a 200 MB limit). So the worker also checks
itself after requests (:class:`RequestMemoryCheck`) and retires at once, as for max-requests, on
a reading over its limit: reading its RSS is a syscall, so it reads after a request only when the
growth seen so far could have brought it to the limit since the last reading, and at least every
``CHECK_EVERY_MAX`` requests otherwise.

Rule: this module is pure. It does no I/O, reads no clock (the arbiter passes each worker's age
and the time of its latest sample) and draws randomness only through the injected ``draw``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from prefork.config import Config

__all__ = [
    "CHECK_EVERY_MAX", "MEMORY_SAMPLES_OVER", "MIB", "RecycleLimits", "RecyclePolicy",
    "RequestMemoryCheck", "WorkerFacts",
]

MIB = 1024 * 1024  # --max-worker-memory counts megabytes of 2**20 bytes, as ps and top do
MEMORY_SAMPLES_OVER = 3  # consecutive samples over the limit before a worker is retired
CHECK_EVERY_MAX = 64  # requests between two of a worker's own readings, at most


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


class RequestMemoryCheck:
    """A worker's own check of ``--max-worker-memory`` after its requests.

    :meth:`due` says whether to read the RSS after the request numbered ``requests``;
    :meth:`review` takes that reading and returns the reason to retire, or None. The next
    reading is planned from the largest growth per request seen between two readings: half the
    requests that growth needs to cross the limit (at least the next request, at most
    ``CHECK_EVERY_MAX`` on), so a worker that grows fast is read after every request as it
    nears its limit, and one that does not is read every 64 requests.
    """

    __slots__ = ("_growth", "_last_requests", "_last_rss", "_next", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # bytes, with this worker's jitter
        self._next = 1
        self._last_rss = 0
        self._last_requests = 0
        self._growth = 0  # the largest growth per request seen, bytes

    def due(self, requests: int) -> bool:
        return requests >= self._next

    def review(self, rss: int, requests: int) -> str | None:
        first = not self._last_requests
        if not first and requests > self._last_requests and rss > self._last_rss:
            growth = (rss - self._last_rss) // (requests - self._last_requests)
            self._growth = max(self._growth, growth)
        self._last_rss, self._last_requests = rss, requests
        if rss > self.limit:
            return (f"RSS {rss / MIB:.0f} MB over {self.limit / MIB:.0f} MB after request "
                    f"{requests} (max-worker-memory)")
        if first:
            self._next = requests + 1  # a second reading gives the first growth
            return None
        headroom = self.limit - rss
        steps = headroom // (2 * self._growth) if self._growth else CHECK_EVERY_MAX
        self._next = requests + max(1, min(CHECK_EVERY_MAX, steps))
        return None

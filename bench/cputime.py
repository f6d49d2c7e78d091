"""CPU time a server spends, read from /proc: what each request cost it, user and kernel apart.

A rate says how fast a server went while its core was saturated; where the load generator is
the limit instead (WebSocket echo, two unpinned workers), the rate says little about the server.
The CPU seconds the server's own processes used during the timed load, divided by the requests
served, say what a request cost in either case, and where: ``user`` is the server's code
(Python, the parser, the event loop), ``system`` is the kernel working for it (reads, writes,
accepts, epoll). Only the server's processes count, never the load generator.

A process that exits during the load takes its CPU time with it (the kernel keeps no record a
sibling could read), so a cell whose workers were replaced under load is understated.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefork.system import procstat


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds, summed over processes."""

    user: float = 0.0
    system: float = 0.0

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user + other.user, self.system + other.system)

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def process_times(pid: int) -> CpuTimes | None:
    """User and system CPU seconds of one process so far, or None if it is gone."""
    sample = procstat.sample(pid)
    return None if sample is None else CpuTimes(sample.user_seconds, sample.system_seconds)


def snapshot(pids: tuple[int, ...]) -> dict[int, CpuTimes]:
    """Each live process's CPU times, by pid."""
    times = {pid: process_times(pid) for pid in pids}
    return {pid: value for pid, value in times.items() if value is not None}


def used_between(before: dict[int, CpuTimes], after: dict[int, CpuTimes]) -> CpuTimes:
    """CPU time spent between two snapshots by the processes alive at the second one; a process
    born in between counts from zero."""
    total = CpuTimes()
    for pid, now in after.items():
        total += now - before.get(pid, CpuTimes())
    return total


def per_request_us(spent: CpuTimes, requests: int) -> tuple[float, float] | None:
    """Microseconds of user and system CPU per request; None without requests."""
    if requests <= 0:
        return None
    return spent.user / requests * 1e6, spent.system / requests * 1e6

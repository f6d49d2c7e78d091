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

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds, summed over processes."""

    user: float = 0.0
    system: float = 0.0

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def process_times(pid: int) -> CpuTimes | None:
    """User and system CPU seconds of one process so far, or None if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces and parentheses: count the fields
    # after its last ")". utime and stime are fields 14 and 15 of the whole line.
    fields = stat[stat.rindex(")") + 2:].split()
    return CpuTimes(int(fields[11]) / TICKS_PER_SECOND, int(fields[12]) / TICKS_PER_SECOND)


def snapshot(pids: tuple[int, ...]) -> dict[int, CpuTimes]:
    """Each live process's CPU times, by pid."""
    times = {pid: process_times(pid) for pid in pids}
    return {pid: value for pid, value in times.items() if value is not None}


def used_between(before: dict[int, CpuTimes], after: dict[int, CpuTimes]) -> CpuTimes:
    """CPU time spent between two snapshots by the processes alive at the second one; a process
    born in between counts from zero."""
    total = CpuTimes()
    for pid, now in after.items():
        spent = now - before.get(pid, CpuTimes())
        total = CpuTimes(total.user + spent.user, total.system + spent.system)
    return total


def per_request_us(spent: CpuTimes, requests: int) -> tuple[float, float] | None:
    """Microseconds of user and system CPU per request; None without requests."""
    if requests <= 0:
        return None
    return spent.user / requests * 1e6, spent.system / requests * 1e6

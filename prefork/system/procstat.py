"""What Linux's ``/proc`` says about a process: resident memory and CPU time.

The arbiter samples its workers once a second for ``prefork ctl status``, the metrics and the
``--max-worker-memory`` recycling; reading two small files per worker costs about 20 µs.
"""

from __future__ import annotations

import os
from typing import NamedTuple

MIB = 1024 * 1024  # --max-worker-memory counts megabytes of 2**20 bytes, as ps and top do
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessSample(NamedTuple):
    rss: int  # bytes
    user_seconds: float  # CPU time in the process's own code since it started
    system_seconds: float  # CPU time in the kernel on its behalf

    @property
    def cpu_seconds(self) -> float:
        """User and system CPU time together."""
        return self.user_seconds + self.system_seconds


def sample(pid: int, proc: str = "/proc") -> ProcessSample | None:
    """Memory and CPU time of ``pid``, or None when it is gone (or /proc is not there)."""
    try:
        with open(f"{proc}/{pid}/statm", "rb") as handle:
            resident_pages = int(handle.read().split()[1])
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except (OSError, ValueError, IndexError):
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses:
    # the fields that follow start after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        user, system = int(fields[11]), int(fields[12])  # utime, stime: fields 14, 15 of stat(5)
    except (IndexError, ValueError):
        return None
    return ProcessSample(resident_pages * PAGE_SIZE, user / CLOCK_TICKS, system / CLOCK_TICKS)


def cpu_percent(before: ProcessSample | None, after: ProcessSample, elapsed: float) -> float:
    """CPU use between two samples, in percent of one core (100 = one core busy)."""
    if before is None or elapsed <= 0:
        return 0.0
    return max(0.0, (after.cpu_seconds - before.cpu_seconds) / elapsed * 100.0)

"""Memory of a server under test, read from /proc: which process is which, RSS, peak RSS, PSS.

Every server is started in its own session, so its processes are those whose session id is the
started process's pid, even after a worker is reparented. The started process is the master
(arbiter); the others are workers, except the helpers that ``multiprocessing`` starts (its
resource tracker), which serve no request. A server that runs alone in one process (uvicorn with
one worker) has that process as its worker and no master.

Figures are kB, as /proc gives them. PSS (``smaps_rollup``) shares each page among the processes
that map it, so the PSS of all of a server's processes adds up to what the server costs the
machine, where RSS would count the pages a fork shares once per process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver",
           "multiprocessing.semaphore_tracker")


@dataclass(frozen=True)
class Roles:
    """A server's processes by role."""

    master: int | None
    workers: tuple[int, ...]
    helpers: tuple[int, ...] = ()  # multiprocessing's: counted in PSS, not as workers

    @property
    def all(self) -> tuple[int, ...]:
        """Every process of the server, master first: what the server costs the machine."""
        return ((self.master,) if self.master is not None else ()) + self.workers + self.helpers


def session_pids(session: int) -> list[int]:
    """Pids of the live processes in ``session``."""
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces:
        # state, ppid, pgrp, session.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":  # a zombie holds no memory
            pids.append(int(entry.name))
    return sorted(pids)


def _cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def roles(root: int) -> Roles:
    """The master, workers and helpers of the server started as ``root`` (a session leader)."""
    others = [pid for pid in session_pids(root) if pid != root]
    helpers = tuple(pid for pid in others
                    if any(helper in _cmdline(pid) for helper in HELPERS))
    workers = tuple(pid for pid in others if pid not in helpers)
    if not workers:
        return Roles(master=None, workers=(root,), helpers=helpers)
    return Roles(master=root, workers=workers, helpers=helpers)


def settle(root: int, workers: int, timeout: float = 10.0, interval: float = 0.1) -> Roles:
    """Wait until ``workers`` workers exist and the server's total RSS holds still, then its roles.

    "Holds still": three readings ``interval`` apart within 1 % of each other. A worker that
    has just been forked or spawned is still importing the app; reading it then would flatter
    the servers whose workers boot slowly. Gives up after ``timeout`` and returns what is there.
    """
    deadline = time.monotonic() + timeout
    readings: list[int] = []
    while True:
        current = roles(root)
        total = sum(status_kb(pid, "VmRSS") or 0 for pid in current.all)
        readings = [*readings[-2:], total]
        steady = (len(readings) == 3 and max(readings) - min(readings) <= max(readings) / 100)
        if (len(current.workers) >= workers and steady) or time.monotonic() >= deadline:
            return current
        time.sleep(interval)


def status_kb(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/PID/status (``VmRSS``, ``VmHWM``), or None if the process is gone."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def pss_kb(pid: int) -> int | None:
    """Proportional set size of one process, or None if it is gone or the kernel lacks it."""
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def total_pss_kb(pids: tuple[int, ...]) -> int | None:
    """Summed PSS of ``pids``; None if any could not be read."""
    values = [pss_kb(pid) for pid in pids]
    if not values or any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None)


def largest(pids: tuple[int, ...], field: str) -> int | None:
    """The largest ``field`` among ``pids`` (the per-worker figure when there are several)."""
    values = [value for value in (status_kb(pid, field) for pid in pids) if value is not None]
    return max(values) if values else None


def available() -> bool:
    """Whether this system has the /proc files the readings need (Linux)."""
    return (PROC / str(os.getpid()) / "smaps_rollup").exists()

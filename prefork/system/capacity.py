"""The most workers one server may run, for ``--max-workers auto``.

Every way to add workers (``--workers``, ``prefork ctl scale``, ``TTIN``) stops at this bound, so
that no command, typo or hostile request can fork the host out of memory (``scale 500`` used to
fork 500 workers, ``scale`` by a 4,000-digit number froze the arbiter while it grew to 4.5 GB).

The rule: **4 workers per usable CPU, at least 16, and no more than one per 32 MiB of the memory
the server may use.** Workers beyond four per core only queue for CPU time; 16 leaves room for
I/O-bound apps on small machines. A bare worker is about 24 MiB resident (the soak in
docs/reliability.md), so more workers than memory ÷ 32 MiB cannot all be alive at once,
whatever the app.
The memory is the tightest of ``MemTotal`` (``/proc/meminfo``) and a cgroup limit on the
process's cgroup or its ancestors (v2 ``memory.max``, v1 ``memory.limit_in_bytes``).

Rule: every function takes the files it reads as arguments (tests point them at a fake tree);
nothing is cached, and where a file is missing or malformed it sets no limit.
"""

from __future__ import annotations

import os

from prefork.system.cpus import CGROUP_ROOT, MEMBERSHIP_FILE, usable_cpus

__all__ = ["MEMINFO_FILE", "MIN_MAX_WORKERS", "WORKERS_PER_CPU", "WORKER_MEMORY",
           "derived_max_workers", "max_workers_auto", "usable_memory"]

WORKERS_PER_CPU = 4
MIN_MAX_WORKERS = 16
WORKER_MEMORY = 32 * 1024 * 1024  # bytes; a bare worker is about 24 MiB resident
MEMINFO_FILE = "/proc/meminfo"
# cgroup v1's "no limit" is a huge number near 2**63 rounded to the page size
V1_NO_LIMIT = 2**62


def derived_max_workers(cpus: int, memory: int | None) -> int:
    """``max(16, 4 * cpus)``, capped at ``memory // 32 MiB`` when the memory is known; >= 1."""
    bound = max(MIN_MAX_WORKERS, WORKERS_PER_CPU * cpus)
    if memory is not None:
        bound = min(bound, memory // WORKER_MEMORY)
    return max(1, bound)


def max_workers_auto(root: str | None = None, membership: str | None = None,
                     meminfo: str | None = None) -> tuple[int, str]:
    """The bound for this process, and how it was found (for error messages)."""
    cpus = usable_cpus(root, membership).count
    memory = usable_memory(root, membership, meminfo)
    shown = "unknown memory" if memory is None else f"{memory // (1024 * 1024)} MiB"
    return derived_max_workers(cpus, memory), f"{cpus} CPUs, {shown}"


def usable_memory(root: str | None = None, membership: str | None = None,
                  meminfo: str | None = None) -> int | None:
    """Bytes of memory this process may use: MemTotal capped by any cgroup limit; None when
    neither is known."""
    root = CGROUP_ROOT if root is None else root
    membership = MEMBERSHIP_FILE if membership is None else membership
    total = _mem_total(MEMINFO_FILE if meminfo is None else meminfo)
    limits = [] if total is None else [total]
    for controllers, path in _memberships(membership):
        if not controllers:
            limits.extend(_along(root, path, "memory.max"))
        elif "memory" in controllers:
            limits.extend(_along(os.path.join(root, "memory"), path,
                                 "memory.limit_in_bytes"))
    return min(limits, default=None)


def _mem_total(meminfo: str) -> int | None:
    for line in _read(meminfo).splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    return None


def _memberships(membership: str) -> list[tuple[list[str], str]]:
    """(controllers, path) per ``ID:controllers:/path`` line of /proc/self/cgroup."""
    found = []
    for line in _read(membership).splitlines():
        fields = line.split(":", 2)
        if len(fields) == 3 and fields[2].startswith("/"):
            found.append(([name for name in fields[1].split(",") if name], fields[2]))
    return found


def _along(mount: str, path: str, name: str) -> list[int]:
    """The limit file ``name`` of the cgroup at ``path`` and of each ancestor."""
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    limits: list[int] = []
    for depth in range(len(parts), -1, -1):
        text = _read(os.path.join(mount, *parts[:depth], name)).strip()
        if text.isdigit() and int(text) < V1_NO_LIMIT:
            limits.append(int(text))
    return limits


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read(65536)
    except (OSError, UnicodeDecodeError):
        return ""

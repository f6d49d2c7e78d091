"""How many CPUs this process may really use, for ``--workers auto``.

``os.cpu_count()`` is the host's core count, also inside a container limited to two CPUs: a
worker per host core there means dozens of workers sharing two cores' worth of time slices. Two
things bound what a process may use:

* **CPU affinity** (``sched_getaffinity``; ``taskset``, ``docker --cpuset-cpus``): the cores it
  may run on.
* **A CFS quota** (``docker --cpus``, a Kubernetes CPU limit): cgroup v2's ``cpu.max``
  (``"200000 100000"``: 200 ms of CPU time every 100 ms, two CPUs' worth; ``"max 100000"``: no
  limit) or cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: no limit).
  Every ancestor of the process's cgroup may set one; the tightest wins, as in the kernel.

The count is ``min(affinity, ceil(quota / period))``, at least 1: a quota of 1.5 CPUs gets two
workers, since each worker is idle part of the time. Where the files are missing, unreadable or
malformed, that source sets no limit.

The process's cgroup comes from ``/proc/self/cgroup`` (``0::/path`` for v2, ``ID:cpu,cpuacct:
/path`` for v1), found under the hierarchy's mount point. Inside a container without a cgroup
namespace that path names the host's view and does not exist under the container's mount, whose
root is then the container's own cgroup: the walk simply skips directories that are not there.

Rule: every function takes the files it reads as arguments (tests point them at a fake tree);
``CGROUP_ROOT`` and ``MEMBERSHIP_FILE`` are the defaults, read at call time. Nothing is cached:
``prefork.config.usable_cpu_count`` asks again on every reload.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CGROUP_ROOT", "MEMBERSHIP_FILE", "CpuQuota", "UsableCpus", "affinity_count",
           "cgroup_quota", "usable_cpus"]

CGROUP_ROOT = "/sys/fs/cgroup"
MEMBERSHIP_FILE = "/proc/self/cgroup"
# cgroup v1 mounts the cpu controller under one of these names, depending on the distribution
V1_CPU_MOUNTS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")


@dataclass(frozen=True, slots=True)
class CpuQuota:
    """A CFS bandwidth limit: ``quota`` microseconds of CPU time every ``period``."""

    quota: int
    period: int
    source: str  # "cpu.max" (cgroup v2) or "cpu.cfs_quota_us" (cgroup v1)
    directory: str  # the cgroup directory that set it

    @property
    def cpus(self) -> float:
        return self.quota / self.period

    def __str__(self) -> str:
        return f"cgroup {self.source} {self.quota}/{self.period}"


@dataclass(frozen=True, slots=True)
class UsableCpus:
    """The worker count for ``--workers auto`` and how it was found."""

    count: int
    affinity: int
    quota: CpuQuota | None

    def __str__(self) -> str:
        """``2 (cgroup cpu.max 200000/100000; affinity 16 CPUs)``, for the start-up log."""
        quota = str(self.quota) if self.quota else "no cgroup CPU quota"
        return f"{self.count} ({quota}; affinity {self.affinity} CPUs)"


def affinity_count() -> int:
    """The cores this process may run on; the host's count where affinity is not available."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def usable_cpus(root: str | None = None, membership: str | None = None,
                affinity: int | None = None) -> UsableCpus:
    """The CPUs this process may use: affinity capped by the tightest cgroup quota; at least 1.

    ``root`` is where cgroup hierarchies are mounted and ``membership`` the process's
    ``/proc/self/cgroup``; ``affinity`` overrides the affinity count (tests).
    """
    cores = affinity_count() if affinity is None else max(1, affinity)
    quota = cgroup_quota(root, membership)
    count = cores if quota is None else min(cores, max(1, math.ceil(quota.cpus)))
    return UsableCpus(count=count, affinity=cores, quota=quota)


def cgroup_quota(root: str | None = None, membership: str | None = None) -> CpuQuota | None:
    """The tightest CPU quota of this process's cgroup and its ancestors, v2 and v1; None when
    no limit is set (or there are no cgroups)."""
    root = CGROUP_ROOT if root is None else root
    membership = MEMBERSHIP_FILE if membership is None else membership
    found: list[CpuQuota] = []
    for controllers, path in _memberships(membership):
        if not controllers:  # "0::/path": the unified (v2) hierarchy
            mount = _v2_mount(root)
            if mount is not None:
                found.extend(_limits(mount, path, _read_cpu_max))
        elif "cpu" in controllers:
            mount = _v1_mount(root, controllers)
            if mount is not None:
                found.extend(_limits(mount, path, _read_cfs_quota))
    return min(found, key=lambda quota: quota.cpus, default=None)


def _memberships(membership: str) -> list[tuple[list[str], str]]:
    """(controllers, cgroup path) per line of /proc/self/cgroup (``ID:controllers:path``)."""
    try:
        with open(membership, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    found = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3 or not fields[2].startswith("/"):
            continue
        controllers = [name for name in fields[1].split(",") if name]
        found.append((controllers, fields[2]))
    return found


def _v2_mount(root: str) -> str | None:
    """The unified hierarchy: at the root (pure v2) or at ``unified/`` (hybrid systemd)."""
    for mount in (root, os.path.join(root, "unified")):
        if os.path.isfile(os.path.join(mount, "cgroup.controllers")):
            return mount
    return None


def _v1_mount(root: str, controllers: list[str]) -> str | None:
    for name in (",".join(controllers), *V1_CPU_MOUNTS):
        mount = os.path.join(root, name)
        if os.path.isdir(mount):
            return mount
    return None


def _limits(mount: str, path: str,
            read: Callable[[str], CpuQuota | None]) -> list[CpuQuota]:
    """Every limit set on the way from the process's cgroup up to the hierarchy's root."""
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    found = []
    for depth in range(len(parts), -1, -1):
        directory = os.path.join(mount, *parts[:depth])
        quota = read(directory)
        if quota is not None:
            found.append(quota)
    return found


def _read_cpu_max(directory: str) -> CpuQuota | None:
    """cgroup v2: ``cpu.max`` is "QUOTA PERIOD" or "max PERIOD"."""
    fields = _read(os.path.join(directory, "cpu.max")).split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _quota(fields[0], fields[1], "cpu.max", directory)


def _read_cfs_quota(directory: str) -> CpuQuota | None:
    """cgroup v1: ``cpu.cfs_quota_us`` (-1 means no limit) over ``cpu.cfs_period_us``."""
    quota = _read(os.path.join(directory, "cpu.cfs_quota_us")).strip()
    if not quota or quota == "-1":
        return None
    period = _read(os.path.join(directory, "cpu.cfs_period_us")).strip()
    return _quota(quota, period, "cpu.cfs_quota_us", directory)


def _quota(quota: str, period: str, source: str, directory: str) -> CpuQuota | None:
    try:
        microseconds, every = int(quota), int(period)
    except ValueError:
        return None
    if microseconds <= 0 or every <= 0:
        return None
    return CpuQuota(quota=microseconds, period=every, source=source, directory=directory)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read(256)
    except (OSError, UnicodeDecodeError):
        return ""

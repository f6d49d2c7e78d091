"""Rolling replacement: the workers waiting for a successor, replaced one at a time.

Rule: never two replacements booting together, and an old worker drains only once its
replacement is ready (the arbiter stops it then). A worker joins the queue when it asks
(``--max-requests``), when a recycling limit is reached (``recycling.RecyclePolicy``) or on
``prefork ctl recycle``; none joins while the arbiter stops, nor one already leaving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prefork.arbiter.records import WorkerRecord, WorkerTable, by_slot
from prefork.arbiter.recycling import RecycleLimits, RecyclePolicy, WorkerFacts
from prefork.arbiter.supervision import WorkerState
from prefork.config import Config


class RollingReplacement:
    """The queue of ``workers`` to replace; ``spawn(slot)`` forks a successor."""

    def __init__(self, workers: WorkerTable, spawn: Callable[[int], object],
                 stopping: Callable[[], bool], retire_requested: Callable[[int, str], None],
                 log: logging.Logger) -> None:
        self._workers = workers
        self._spawn = spawn
        self._stopping = stopping
        self._retire_requested = retire_requested  # the metrics' count
        self._log = log
        self.pending: list[int] = []  # pids waiting for a rolling replacement, in order
        self.recycler = RecyclePolicy()  # --max-worker-lifetime, --max-worker-memory

    def request(self, worker: WorkerRecord, reason: str) -> None:
        if worker.retiring or worker.stop_requested or self._stopping():
            return
        self._log.info("worker %d (slot %d) retiring: %s", worker.pid, worker.slot, reason)
        self.pending.append(worker.pid)
        self._retire_requested(worker.pid, reason)

    def recycle(self, pid: int | None) -> list[int]:
        """Queue worker ``pid``, or every worker for None; the pids queued. Raises LookupError
        for a pid that is not a live worker (or is already being replaced)."""
        chosen = [w for w in sorted(self._workers.active(), key=by_slot)
                  if pid is None or w.pid == pid]
        if pid is not None and not chosen:
            raise LookupError(f"no worker with pid {pid} to recycle")
        for worker in chosen:
            if worker.pid not in self.pending:
                self.request(worker, "recycle requested")
        return [w.pid for w in chosen if w.pid in self.pending]

    def review(self, now: float, config: Config) -> None:
        """--max-worker-lifetime and --max-worker-memory: queue the workers due."""
        limits = RecycleLimits.from_config(config)
        if not limits.enabled:
            return
        candidates = [WorkerFacts(w.pid, now - w.started_at, w.rss, w.sampled_at)
                      for w in self._workers.values()
                      if w.state is WorkerState.SERVING and not w.retiring
                      and not w.stop_requested and w.pid not in self.pending]
        for pid, reason in self.recycler.review(candidates, limits):
            self.request(self._workers[pid], reason)

    def start_next(self) -> None:
        """Fork the next successor, unless one is still booting."""
        if any(w.retiring and not w.stop_requested for w in self._workers.values()):
            return
        while self.pending:
            worker = self._workers.get(self.pending.pop(0))
            if worker is not None and not worker.stop_requested:
                worker.retiring = True
                self._spawn(worker.slot)
                return

    def gone(self, pid: int) -> None:
        """Worker ``pid`` exited: it waits for nothing now."""
        if pid in self.pending:
            self.pending.remove(pid)

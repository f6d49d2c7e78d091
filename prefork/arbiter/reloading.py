"""Where a reload stands: which old workers it replaces, and whether it is done or failed.

Rule: a reload succeeds when every replacement it forked is ready and every worker it replaces
has been told to drain; it fails at the first replacement that does not boot. A failed reload
stops the replacements still booting, lets the old workers serve on as if it never happened,
and is reported (``state``: the log, ``prefork ctl status``, the metrics); the next reload
starts from scratch. Forking and stopping are the arbiter's: it gives the stop here. A reload
applies every setting read again but the listeners and the dispatch mode (``settings_to_apply``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, Protocol, TypeVar

from prefork.config import Config


def settings_to_apply(running: Config, reread: Callable[[], Config],
                      log: logging.Logger) -> Config:
    """The settings a reload applies: every source read again (``reread`` raises ConfigError or
    ValueError for a bad one), but the listeners and the dispatch mode of ``running``, which
    only a restart can change."""
    config = reread()
    if config.bind != running.bind or config.dispatch_mode() != running.dispatch_mode():
        log.warning("reload: bind and dispatch changes need a restart; keeping %s",
                    ", ".join(running.bind))
        config = config.replace(bind=running.bind, dispatch=running.dispatch_mode(),
                                reuse_port=False)
    return config


class ReloadedWorker(Protocol):
    """What a reload reads and marks on a worker's record."""

    pid: int
    slot: int
    reloading: bool  # forked by the reload and not ready yet
    retiring: bool  # to be replaced: drains once its replacement is ready
    stop_requested: bool


Worker = TypeVar("Worker", bound=ReloadedWorker)


class ReloadProgress(Generic[Worker]):
    """The last reload of the arbiter whose ``workers`` (pid: record, kept current) it reads."""

    def __init__(self, workers: Mapping[int, Worker], stop: Callable[[Worker], None],
                 log: logging.Logger) -> None:
        self._workers = workers
        self._stop = stop  # a graceful stop with the running configuration's grace
        self._log = log
        self.replacing: set[int] = set()  # old workers the current reload replaces
        self.state = {"state": "none", "reason": ""}  # in progress, done or failed

    def begin(self, replaced: Iterable[Worker]) -> None:
        """A reload replaces ``replaced``; the arbiter forks their replacements."""
        self.state = {"state": "in progress", "reason": ""}
        for worker in replaced:
            worker.retiring = True
            self.replacing.add(worker.pid)

    def abandon(self) -> None:
        """Stop what an unfinished reload still boots; the workers it was to replace serve on
        as if it never happened."""
        for worker in list(self._workers.values()):
            if worker.reloading and not worker.stop_requested:
                worker.reloading = False
                self._stop(worker)
            elif worker.pid in self.replacing and not worker.stop_requested:
                worker.retiring = False
        self.replacing.clear()

    def replaced(self, pid: int) -> None:
        """Old worker ``pid`` drains or is gone: it no longer holds the reload open."""
        self.replacing.discard(pid)

    def failed(self, worker: Worker, description: str, details: str = "") -> None:
        """Replacement ``worker`` could not boot (``description``; the app's traceback in
        ``details``, on lines of its own, or ""): the reload has failed."""
        kept = sum(1 for w in self._workers.values()
                   if w.pid in self.replacing and not w.stop_requested)
        self.abandon()
        self.state = {"state": "failed", "reason": description}
        self._log.error("reload failed: new worker %d (slot %d) did not boot (%s); the %d old "
                        "workers keep serving. Reload again (HUP, prefork ctl reload) once it "
                        "is fixed%s", worker.pid, worker.slot, description, kept, details)

    def check_done(self) -> None:
        if self.state["state"] != "in progress":
            return
        if not self.replacing and not any(w.reloading for w in self._workers.values()):
            self.state = {"state": "done", "reason": ""}

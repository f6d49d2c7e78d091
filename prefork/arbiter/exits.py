"""How the log tells a worker's exit, and why the workers that could not boot failed.

Rule: one line per exit, its level by what it means: INFO for a stop the arbiter asked for,
WARNING for a clean exit nobody asked for, ERROR for a crash, CRITICAL for a boot failure. A
boot failure carries the app's traceback the first time it is seen; its repeats (every
replacement fails the same way) say "same error as before" in one line.
"""

from __future__ import annotations

import logging
import os

from prefork.arbiter.records import WorkerRecord, describe_status
from prefork.arbiter.supervision import BootFailureReports
from prefork.errors import BOOT_EXIT_CODES


class ExitReports:
    """The exit lines of one arbiter's workers, and the last boot failure's reason."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.boot_failures = BootFailureReports()  # which ones were logged with a traceback
        self.last_boot_reason = ""

    def boot_failed(self, worker: WorkerRecord, reason: str, details: str) -> None:
        """``worker`` says why it cannot boot (its exit follows)."""
        worker.boot_reason = self.last_boot_reason = reason
        worker.boot_details = details

    def report(self, worker: WorkerRecord, status: int, *, crashed: bool,
               lifetime: float, failed_reload: bool = False) -> str:
        """Log the exit of ``worker`` (``status`` from ``waitpid``); returns how it ended, with
        its boot failure's reason if it had one. The replacement that fails a reload gets a
        short line: the reload's failure line carries the reason (``reload_failure_details``)."""
        description = describe_status(status)
        if failed_reload:
            self.log.info("worker %d (slot %d) did not boot (%s)", worker.pid, worker.slot,
                          description)
            return f"{description}: {worker.boot_reason}" if worker.boot_reason else description
        app_traceback, logged = "", description
        if worker.boot_reason:
            # the log says a repeated failure in one line; a failed reload reports it whole
            reason, app_traceback = self._boot_failure_text(worker)
            logged = f"{description}: {reason}"
            description = f"{description}: {worker.boot_reason}"
        code = os.waitstatus_to_exitcode(status)
        if crashed and code == 0:
            # a TERM or INT sent to this one worker (gunicorn's way to restart one): a clean
            # stop nobody here asked for, replaced like any exit, but no failure
            self.log.warning("worker %d (slot %d) exited by itself after %.1fs (%s); replacing "
                             "it", worker.pid, worker.slot, lifetime, logged)
        elif crashed:
            level = logging.ERROR if code not in BOOT_EXIT_CODES else logging.CRITICAL
            self.log.log(level, "worker %d (slot %d) died after %.1fs (%s)%s", worker.pid,
                         worker.slot, lifetime, logged, app_traceback)
        else:
            self.log.info("worker %d (slot %d) stopped (%s)%s", worker.pid, worker.slot,
                          logged, app_traceback)
        return description

    def reload_failure_details(self, worker: WorkerRecord) -> str:
        """The app's traceback of the replacement that failed a reload, on lines of its own,
        the first time it is seen; "" for a repeat."""
        return self._boot_failure_text(worker)[1] if worker.boot_reason else ""

    def _boot_failure_text(self, worker: WorkerRecord) -> tuple[str, str]:
        """Why a worker could not boot, and the app's traceback on lines of its own, the first
        time; a failure seen before is one line (every replacement fails the same way)."""
        if not self.boot_failures.is_new(worker.boot_reason, worker.boot_details):
            return "same error as before", ""
        return worker.boot_reason, f"\n{worker.boot_details}" if worker.boot_details else ""

"""The arbiter's watch on each worker: its heartbeat and stop deadlines, and its /proc samples.

Rule: a worker silent for longer than ``--timeout`` gets SIGABRT (its stack goes to the log)
and is draining from then on; one still there ``ABORT_GRACE`` seconds after an abort, or past
the deadline of a stop it was asked for, gets SIGKILL. The watch only reads the clock and the
records (and /proc) and sends signals; what an exit means is decided when it is reaped.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable

from prefork.arbiter.records import WorkerRecord
from prefork.arbiter.supervision import WorkerState
from prefork.system.procstat import cpu_percent
from prefork.system.procstat import sample as sample_process

SAMPLE_INTERVAL = 1.0  # seconds between /proc samples of each worker (RSS, CPU)
ABORT_GRACE = 2.0  # seconds between SIGABRT (stack dump) and SIGKILL for a hung worker


def check_deadlines(workers: Iterable[WorkerRecord], now: float, timeout: float,
                    send: Callable[[WorkerRecord, int], None], log: logging.Logger) -> None:
    """Abort the workers whose heartbeat is overdue; kill those past a stop or abort deadline."""
    for worker in list(workers):
        if worker.abort_sent_at is not None:
            if now - worker.abort_sent_at > ABORT_GRACE:
                send(worker, signal.SIGKILL)
            continue
        if worker.stop_deadline is not None and now > worker.stop_deadline:
            log.warning("worker %d (slot %d) did not stop in time; killing it",
                        worker.pid, worker.slot)
            worker.abort_sent_at = now
            send(worker, signal.SIGKILL)
        elif timeout and not worker.stop_requested and now - worker.last_seen > timeout:
            log.critical(
                "worker %d (slot %d) timed out: no heartbeat for %.1fs (--timeout %g); "
                "sending SIGABRT", worker.pid, worker.slot, now - worker.last_seen, timeout)
            worker.abort_sent_at = now
            worker.state = WorkerState.DRAINING
            send(worker, signal.SIGABRT)


def sample_workers(workers: Iterable[WorkerRecord], now: float) -> None:
    """Resident memory and CPU of each worker, once every ``SAMPLE_INTERVAL``."""
    for worker in workers:
        if now - worker.sampled_at < SAMPLE_INTERVAL:
            continue
        current = sample_process(worker.pid)
        if current is None:
            continue
        if worker.sample is not None:
            worker.cpu_percent = cpu_percent(worker.sample, current, now - worker.sampled_at)
        worker.sample, worker.sampled_at = current, now

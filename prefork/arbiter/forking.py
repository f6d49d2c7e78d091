"""The fork of a worker: what the child inherits, and what it may run before it is a worker.

Rule: in the child, ``fork_worker`` never returns; the process exits with the worker's status
(1 when anything raised, logged with its traceback). The arbiter's signals stay blocked until
the child has forgotten the arbiter's state (its handlers above all), so a signal sent right
after the fork meets the worker's own dispositions instead of being lost.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import Callable

from prefork.arbiter.wakeup import HANDLED_SIGNALS


def fork_worker(forget_arbiter: Callable[[], None], worker_main: Callable[[], int]) -> int:
    """Fork; the child runs ``forget_arbiter`` with the arbiter's signals blocked, then
    ``worker_main`` with them unblocked, and exits with its status. Returns the child's pid."""
    # The worker inherits every object as permanent: its collections never walk them, so
    # never write to (and copy) the pages it shares with the arbiter. The arbiter keeps them
    # permanent too: a full collection there writes to every object it tracks, and each page
    # it writes stops being shared with the workers (eight workers of the hello app: 4.9 MB
    # more PSS in all after one). What the arbiter makes after this fork is collected as before,
    # until the next fork; see collect_all for what is frozen and later becomes garbage.
    gc.freeze()
    # Until the child has dropped the arbiter's handlers, a signal would run them there: a
    # TERM sent to it (a stop begun right after the fork) would only write to the
    # arbiter's wakeup pipe and be lost, and the worker would serve on until SIGKILL.
    # Blocked, it stays pending and the child meets it under its own disposition.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    pid = -1
    try:
        pid = os.fork()
    finally:
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if pid == 0:  # the worker
        code = 1
        try:
            forget_arbiter()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            code = worker_main()
        except BaseException:
            logging.getLogger("prefork.error").exception("worker %d crashed", os.getpid())
        finally:
            os._exit(code)
    return pid


def collect_all() -> None:
    """Collect everything the arbiter froze at its forks, when every worker is being replaced.

    A frozen object that later becomes garbage in a reference cycle is never collected while
    frozen. A reload replaces every worker, so the pages this collection copies are shared only
    with workers about to drain, and their replacements fork from the collected heap."""
    gc.unfreeze()
    gc.collect()

"""Binary upgrade (SIGUSR2), gunicorn's procedure: a new arbiter inherits the listeners.

The old arbiter forks a child that executes ``python -m prefork`` with the original command
line and ``PREFORK_INHERITED_FDS`` naming every listening socket by address and slot; the new
arbiter adopts them instead of binding (``prefork.sockets.open_listeners``). Both serve until the
operator sends TERM to the old one, whose pidfile waits as ``PIDFILE.oldbin`` meanwhile. If the
new arbiter dies first, the old one takes its pidfile and unix socket paths back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable

from prefork.arbiter.wakeup import HANDLED_SIGNALS
from prefork.sockets import INHERITED_FDS_VARIABLE, ListenerSet, handover_environment


def start_new_arbiter(listeners: list[ListenerSet], command: list[str], cwd: str,
                      pidfile: str | None, before_exec: Callable[[], None],
                      signals: Iterable[int]) -> int:
    """Fork and exec the new arbiter; returns its pid. ``before_exec`` runs in the child."""
    for listener in listeners:
        listener.handed_over = True  # our exit must not unlink a unix socket it now serves
    pid = os.fork()
    if pid == 0:
        try:
            env = dict(os.environ)
            env[INHERITED_FDS_VARIABLE] = handover_environment(listeners, os.getpid())
            os.chdir(cwd)
            before_exec()
            signal.set_wakeup_fd(-1)
            for signum in signals:
                signal.signal(signum, signal.SIG_DFL)
            os.execve(sys.executable, [sys.executable, "-m", "prefork", *command], env)
        finally:
            os._exit(127)
    if pidfile:
        with contextlib.suppress(OSError):
            os.rename(pidfile, pidfile + ".oldbin")
    return pid


def take_back(listeners: list[ListenerSet], pidfile: str | None) -> None:
    """The new arbiter died: this one owns its sockets and pidfile again."""
    for listener in listeners:
        listener.handed_over = False
    if pidfile:
        with contextlib.suppress(OSError):
            os.rename(pidfile + ".oldbin", pidfile)


class BinaryUpgrade:
    """The upgrades of one arbiter: at most one new arbiter on its way at a time."""

    def __init__(self, command: list[str] | None, listeners: list[ListenerSet],
                 log: logging.Logger) -> None:
        self.command = command  # argv of the prefork command; None: no upgrade possible
        self.cwd = os.getcwd()  # where the prefork command was started
        self.listeners = listeners
        self.log = log
        self.pid: int | None = None  # the new arbiter, until it exits

    def start(self, pidfile: str | None, before_exec: Callable[[], None],
              stopping: bool) -> None:
        """SIGUSR2: start the new arbiter, unless one runs already or this one is stopping."""
        if self.command is None:
            self.log.warning("SIGUSR2: a binary upgrade needs the prefork command; ignored")
            return
        if self.pid is not None or stopping:
            self.log.warning("SIGUSR2: an upgrade is already running; ignored")
            return
        self.pid = start_new_arbiter(self.listeners, self.command, self.cwd, pidfile,
                                     before_exec, HANDLED_SIGNALS)
        self.log.info("SIGUSR2: started new arbiter %d on the same listeners; send SIGTERM to "
                      "%d once it serves", self.pid, os.getpid())

    def new_arbiter_exited(self, pidfile: str | None) -> None:
        """The new arbiter died while this one still runs: take the listeners back."""
        self.pid = None
        take_back(self.listeners, pidfile)

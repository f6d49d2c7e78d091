"""Binary upgrade (SIGUSR2), gunicorn's procedure: a new arbiter inherits the listeners.

The old arbiter forks a child that executes ``python -m prefork`` with the original command
line and ``PREFORK_INHERITED_FDS`` naming every listening socket by address and slot; the new
arbiter adopts them instead of binding (``prefork.sockets.open_listeners``). Both serve until the
operator sends TERM to the old one, whose pidfile waits as ``PIDFILE.oldbin`` meanwhile. If the
new arbiter dies first, the old one takes its pidfile and unix socket paths back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable

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

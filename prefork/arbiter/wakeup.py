"""The arbiter's signals: which ones it handles, and the pipe that queues them for its loop.

Rule: a signal handler only records that the signal came. Python's ``signal.set_wakeup_fd``
writes each signal's number to a pipe; the handler itself does nothing; the arbiter's selector
wakes on the pipe, and the loop reads the numbers and acts on them outside the signal context.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal

HANDLED_SIGNALS = (
    signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGTTIN,
    signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGWINCH,
)
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


class SignalQueue:
    """The signals received and not yet handled, in order of arrival."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self._read = -1
        self._write = -1

    def install(self, selector: selectors.BaseSelector) -> None:
        """Handle every signal of ``HANDLED_SIGNALS`` by queueing it; ``selector`` wakes on it."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._read, self._write = read_fd, write_fd
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, _record_signal)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        selector.register(read_fd, selectors.EVENT_READ, self.collect)

    def collect(self, _key: selectors.SelectorKey | None = None) -> None:
        """Move what the pipe holds into ``pending``."""
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._read, 256):
                self.pending.extend(data)

    def take(self) -> list[int]:
        """Every pending signal, removed from the queue."""
        signals, self.pending = self.pending, []
        return signals

    def take_stops(self) -> list[int]:
        """The stop signals already sent, the ones still in the pipe included, removed from the
        queue; the others stay pending in their order."""
        if self._read < 0:
            return []
        self.collect()
        stops = [signum for signum in self.pending if signum in STOP_SIGNALS]
        if stops:
            self.pending = [s for s in self.pending if s not in STOP_SIGNALS]
        return stops

    def forget(self) -> None:
        """In a fresh worker: the default dispositions again, and the arbiter's pipe closed."""
        signal.set_wakeup_fd(-1)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        with contextlib.suppress(OSError):
            os.close(self._read)
            os.close(self._write)

    def detach(self) -> None:
        """No more signals to the pipe (the arbiter is exiting)."""
        signal.set_wakeup_fd(-1)

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


def _record_signal(_signum: int, _frame: object) -> None:
    """The number already went to the wakeup fd; nothing else may happen in signal context."""

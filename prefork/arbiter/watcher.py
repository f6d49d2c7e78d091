"""The code watcher of ``--reload``: a child process running watchfiles, and the arbiter's end
of the pipe it reports on.

Rule: the arbiter never waits on the file system. The watcher is a separate interpreter
(``python -m prefork.arbiter.watcher``, started with every descriptor closed), not a thread:
the arbiter forks workers, and a fork of a process with a watching thread in it would copy a
thread that is not there in the child, with whatever lock it held. watchfiles groups a burst of
changes (an editor writing several files) until 50 ms pass without one; the watcher writes the
batch as one JSON line to its stdout, a pipe the arbiter's selector watches, and the arbiter
waits ``QUIET`` more seconds for further batches before it reloads once.

The child stops on SIGTERM (watchfiles' stop event, checked at least every half second), when
its pipe breaks, and when the arbiter that started it is gone; it ignores SIGINT, since Ctrl-C
reaches the whole process group and the arbiter stops it in its turn.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prefork.arbiter.records import describe_status
from prefork.arbiter.watchplan import WatchPlan

QUIET = 0.1  # seconds without a further batch before the reload starts
STOP_WAIT = 2.0  # seconds the child gets to leave after SIGTERM before SIGKILL
ENGINES = {"auto": None, "poll": True, "inotify": False}  # watchfiles' force_polling
_PREFORK_PARENT = str(Path(__file__).resolve().parents[2])  # the child imports this package


class CodeWatcher:
    """The watcher process for ``plan``; ``take_due`` hands over the changed paths once they
    settled."""

    def __init__(self, plan: WatchPlan, engine: str, log: logging.Logger,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.engine = engine
        self._log = log
        self._clock = clock
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe = -1
        self._selector: selectors.BaseSelector | None = None
        self._partial = b""
        self._changed: set[str] = set()
        self._due_at = 0.0
        self.pid = 0  # 0 once reaped (or before the start)

    def start(self, selector: selectors.BaseSelector) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [_PREFORK_PARENT, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "prefork.arbiter.watcher", self.engine, self.plan.to_json()],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close_fds=True, env=env)
        assert self._process.stdout is not None
        self._pipe = self._process.stdout.fileno()
        self.pid = self._process.pid
        os.set_blocking(self._pipe, False)
        self._selector = selector
        selector.register(self._pipe, selectors.EVENT_READ, self._on_output)

    def _on_output(self, _key: selectors.SelectorKey) -> None:
        try:
            data = os.read(self._pipe, 65536)
        except BlockingIOError:
            return
        if not data:  # the child is gone; its exit is reaped and reported with the others
            if self._selector is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(self._pipe)
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            try:
                report = json.loads(line)
            except ValueError:  # not one of ours: a line something else wrote to its stdout
                self._log.warning("reload: the file watcher wrote %r", line[:200])
                continue
            if isinstance(report, dict):
                self._on_report(report)

    def _on_report(self, report: dict[str, object]) -> None:
        if "ready" in report:
            self._log.info("reload: watching %s; engine %s", self.plan.describe(), self.engine)
        elif "error" in report:
            self._log.error("reload: the file watcher failed: %s; changes no longer reload",
                            report["error"])
        elif isinstance(changed := report.get("changed"), list):
            self._changed.update(str(path) for path in changed)
            self._due_at = self._clock() + QUIET

    def due_at(self) -> float | None:
        """When the changes seen so far are due, or None without any."""
        return self._due_at if self._changed else None

    def take_due(self, now: float) -> list[str]:
        """The paths changed, once no batch came for ``QUIET`` seconds; [] until then."""
        if not self._changed or now < self._due_at:
            return []
        changed, self._changed = sorted(self._changed), set()
        return changed

    def stop(self) -> None:
        """Ask the child to leave (the arbiter is stopping); its exit is reaped as usual."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def exited(self, status: int, stopping: bool) -> None:
        """The arbiter reaped the child with ``status``."""
        self.pid = 0
        if self._process is not None:
            self._process.returncode = os.waitstatus_to_exitcode(status)  # reaped already
        if not stopping:
            self._log.error("reload: the file watcher exited (%s); changes no longer reload",
                            describe_status(status))

    def forget(self) -> None:
        """In a fresh worker: the pipe is the arbiter's."""
        with contextlib.suppress(OSError):
            os.close(self._pipe)

    def close(self) -> None:
        """The arbiter exits: the child is gone or made to go, and reaped."""
        self.stop()
        deadline = self._clock() + STOP_WAIT
        while self.pid:
            late = self._clock() > deadline
            if late:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            try:
                pid, status = os.waitpid(self.pid, 0 if late else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                pid, status = self.pid, 0
            if pid:
                self.exited(status, stopping=True)
            else:
                time.sleep(0.01)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()


# -- the child ----------------------------------------------------------------------------------


def _send(report: dict[str, object]) -> None:
    os.write(1, json.dumps(report).encode() + b"\n")


def watch(plan: WatchPlan, engine: str) -> int:
    """Report the changes ``plan`` wants on stdout until told to stop; the exit status."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    arbiter = os.getppid()
    try:
        from watchfiles import watch as watch_changes

        changes = watch_changes(
            *plan.watched_paths(), watch_filter=lambda _change, path: plan.wants(path),
            stop_event=stop, rust_timeout=500, yield_on_timeout=True, raise_interrupt=False,
            force_polling=ENGINES[engine], ignore_permission_denied=True)
        ready = False
        for batch in changes:
            if os.getppid() != arbiter:
                return 0
            if not ready:  # the first yield: the watches are in place
                ready = True
                _send({"ready": True})
            if batch:
                _send({"changed": sorted(path for _change, path in batch)})
    except BrokenPipeError:
        return 0
    except Exception as exc:  # reported by the arbiter, in its log
        with contextlib.suppress(OSError):
            _send({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(watch(WatchPlan.from_json(sys.argv[2]), sys.argv[1]))

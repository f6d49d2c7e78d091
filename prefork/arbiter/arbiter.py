"""The arbiter: a small single-threaded loop that owns the listeners and supervises workers.

Signals only write their number to a wakeup pipe (``signal.set_wakeup_fd``); a selector watches
that pipe, every worker's control channel, the embedder's channel and, in ``roundrobin`` mode,
the listeners. The loop dispatches signals to ``handle_<name>`` methods, reaps every child with
``waitpid(-1, WNOHANG)``, checks heartbeats and stop deadlines, and refills empty worker slots
when the restart policy (``prefork.arbiter.supervision``) allows. It never imports app code
unless the app was preloaded, and it never handles a request.

It is longer than the house's 600 lines because it is one state machine: the signal handlers,
the worker table, the deadlines and the embedder's commands all read and change the same
records. What stands alone lives elsewhere: the records and their table (``records``), the signal
queue (``wakeup``), the fork (``forking``), the heartbeat and stop deadlines (``watchdog``), how
exits are logged (``exits``), a reload's progress (``reloading``), the embedder's link and
commands (``embedder``), the restart policy (``supervision``), the hand-off of accepted connections
(``dispatch``), the binary upgrade (``upgrade``), the sockets, the control socket
(``control``), the metrics endpoint and totals (``metrics.collector``), the rolling
replacement (``rolling``), the recycling limits (``recycling``), the /proc samples
(``procstat``) and the code watcher of ``--reload`` (``watcher``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefork.arbiter.dispatch import HandOff
from prefork.arbiter.embedder import EmbedderLink, carry_out
from prefork.arbiter.exits import ExitReports
from prefork.arbiter.forking import collect_all, fork_worker
from prefork.arbiter.records import (
    PendingFork,
    SlotHistory,
    WorkerRecord,
    WorkerTable,
    by_slot,
    describe_status,
)
from prefork.arbiter.relay import relay_broadcast
from prefork.arbiter.reloading import ReloadProgress, settings_to_apply
from prefork.arbiter.rolling import RollingReplacement
from prefork.arbiter.supervision import (
    RestartPolicy,
    RestartSettings,
    WorkerState,
)
from prefork.arbiter.upgrade import BinaryUpgrade
from prefork.arbiter.wakeup import SignalQueue
from prefork.arbiter.watchdog import check_deadlines, sample_workers
from prefork.arbiter.watcher import CodeWatcher
from prefork.config import Config
from prefork.errors import (
    ConfigError,
)
from prefork.hooks import ListenerView, ServerView, WorkerView, call_hook
from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import (
    AppMessage,
    BootFailed,
    BroadcastRequest,
    Heartbeat,
    Ready,
    Retiring,
    Unready,
)
from prefork.logs.error_log import log_stop_reason, reopen_log_files
from prefork.metrics.collector import MetricsCollector
from prefork.sockets import ListenerSet

if TYPE_CHECKING:
    from prefork.arbiter.control import ControlServer

ARBITER_EXIT_OK = 0
ARBITER_EXIT_BOOT_FAILED = 3  # no worker could be kept alive: the circuit breaker is open

FAST_STOP_GRACE = 2.0  # seconds workers get after SIGQUIT before SIGKILL

# A worker process: receives (the current config, slot, its channel end, listeners for its
# slot, the hooks' view of itself) after fork, so a reload's settings reach new workers.
WorkerMain = Callable[[Config, int, Channel, list[socket.socket], WorkerView], int]


class Arbiter:
    """Supervises ``config.worker_count()`` workers forked with ``worker_main``."""

    def __init__(
        self,
        config: Config,
        listeners: list[ListenerSet],
        worker_main: WorkerMain,
        logger: logging.Logger,
        control: Channel | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_config: Callable[[], Config] | None = None,
        upgrade_command: list[str] | None = None,
        control_socket: ControlServer | None = None,
        metrics: MetricsCollector | None = None,
        proc_name: str = "prefork",
        watcher: CodeWatcher | None = None,
    ) -> None:
        self.config = config
        self.reload_config = reload_config  # re-reads every settings source on SIGHUP
        self.upgrade = BinaryUpgrade(upgrade_command, listeners, logger)  # SIGUSR2
        self.age = 0
        self._forking: list[PendingFork] = []  # the batch being forked (_fork_all)
        self.view = ServerView(os.getpid(), config, logger, self._worker_views,
                               lambda: self.target,
                               lambda data: self._broadcast(data, os.getpid()),
                               proc_name=proc_name,
                               listeners=[ListenerView(ls, tls=bool(config.certfile))
                                          for ls in listeners])
        self.listeners = listeners
        self.worker_main = worker_main
        self.log = logger
        self.embedder = EmbedderLink(control)
        self.clock = clock
        self.policy = RestartPolicy(RestartSettings.from_config(config), clock=clock)
        self.workers = WorkerTable()
        self.slots: dict[int, SlotHistory] = {}
        self.target = config.worker_count()
        self.selector = selectors.DefaultSelector()
        self.signals = SignalQueue()
        self.stopping: str | None = None  # "graceful" or "fast" once shutdown began
        self.stop_deadline = 0.0
        self.exit_code = ARBITER_EXIT_OK
        self.exits = ExitReports(logger)  # the log's lines, the last boot failure's reason
        self.hand_off = HandOff(self.selector, logger, self.workers.serving,
                                self._close_channel)  # type: ignore[arg-type]  # WorkerRecord
        self.reload_progress = ReloadProgress(self.workers, self._stop_gracefully, logger)
        self.control_socket = control_socket  # prefork ctl
        # --metrics-bind and --statsd-host (bound by run_arbiter before privileges drop)
        self.metrics = metrics or MetricsCollector(config, logger)
        self.rolling = RollingReplacement(self.workers, self._spawn, lambda: bool(self.stopping),
                                          self.metrics.retire_requested, logger)
        self.replacements_pending = self.rolling.pending  # read by the control socket
        self.shutdown_at: float | None = None  # when the announced shutdown (SIGTERM) begins
        self.watcher = watcher  # --reload

    def _worker_views(self) -> dict[int, WorkerView]:
        return {pid: WorkerView(pid, os.getpid(), w.age, w.slot, self.config, self.log)
                for pid, w in self.workers.items()}

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the process exit status."""
        self.signals.install(self.selector)
        self.embedder.watch(self.selector, self._on_control)
        # gunicorn's wording, which scripts wait for; then prefork's own facts
        for listener in self.view.LISTENERS:
            self.log.info("Listening at: %s (%d)", listener, os.getpid())
        addresses = ", ".join(f"{ls.address.kind}:{self._describe(ls)}" for ls in self.listeners)
        self.log.info("arbiter %d listening on %s; %d worker%s; dispatch %s", os.getpid(),
                      addresses, self.target, "" if self.target == 1 else "s",
                      self.config.dispatch_mode())
        if not self.config.workers:
            from prefork.system.cpus import usable_cpus

            self.log.info("workers auto: %s", usable_cpus())
        if self.control_socket is not None:
            self.control_socket.attach(self.selector, self, self.clock)
        self.metrics.start(self.selector, self.stats)
        if self.watcher is not None:
            self.watcher.start(self.selector)
        for slot in range(self.target):
            self.slots.setdefault(slot, SlotHistory())
        call_hook(self.config, "when_ready", self.view, log=self.log)
        try:
            while True:
                self._maintain()
                if self.stopping and not self.workers:
                    break
                if self.exit_code != ARBITER_EXIT_OK and not self.workers:
                    break
                for key, _ in self.selector.select(self._next_timeout()):
                    key.data(key)
                self._dispatch_signals()
        finally:
            call_hook(self.config, "on_exit", self.view, log=self.log)
            self._close()
        return self.exit_code

    @staticmethod
    def _describe(listener: ListenerSet) -> str:
        address = listener.address
        if address.kind == "tcp":
            return f"{address.host}:{listener.port}"
        return str(address)

    def _next_timeout(self) -> float:
        # The loop has only a handful of deadlines; a short tick keeps the code plain and the
        # arbiter responsive without measurable CPU (one wakeup per 100 ms).
        tick = 0.1 if self.workers or self.stopping else 0.5
        if self.watcher is not None and (due := self.watcher.due_at()) is not None:
            return max(0.0, min(tick, due - self.clock()))  # --reload's wait for quiet
        return tick

    def _dispatch_signals(self) -> None:
        for signum in self.signals.take():
            name = signal.Signals(signum).name.lower()
            getattr(self, f"handle_{name}", self.handle_ignored)()

    # -- signal handlers (run from the loop, never from the signal context) ---------------------

    def handle_sigchld(self) -> None:
        self._reap()

    def handle_sigterm(self) -> None:
        delay = self.config.shutdown_delay
        if delay and self.shutdown_at is None and not self.stopping:
            self.announce_shutdown(delay)
        else:  # no delay, or a second SIGTERM: stop now
            self.begin_stop(graceful=True)

    def handle_sigint(self) -> None:
        self.begin_stop(graceful=False)

    handle_sigquit = handle_sigint

    def handle_sighup(self) -> None:
        self.reload()

    def handle_sigttin(self) -> None:
        try:
            self.scale(self.target + 1)
        except ValueError as exc:
            self.log.warning("TTIN: %s", exc)

    def handle_sigttou(self) -> None:
        self.scale(self.target - 1)

    def handle_sigusr1(self) -> None:
        reopen_log_files(self.log)
        self.log.info("reopened log files")
        for worker in self.workers.values():
            self._signal_worker(worker, signal.SIGUSR1)

    def handle_ignored(self) -> None:
        """SIGWINCH and signals without a meaning here."""

    def handle_sigusr2(self) -> None:
        """Binary upgrade: exec a new arbiter that inherits every listener. Both serve until
        the old one is sent TERM (or QUIT); gunicorn's procedure, pidfile renamed to .oldbin."""
        self.upgrade.start(self.config.pidfile,
                           lambda: call_hook(self.config, "pre_exec", self.view, log=self.log),
                           stopping=bool(self.stopping))

    # -- operations shared by signals and the embedding API -------------------------------------

    def begin_stop(self, graceful: bool) -> None:
        """Stop every worker (gracefully: let in-flight requests finish) and then exit."""
        now = self.clock()
        mode = "graceful" if graceful else "fast"
        if self.stopping == "fast" or self.stopping == mode:
            return
        self.stopping = mode
        self.log.info("%s shutdown of %d workers", mode, len(self.workers))
        self.hand_off.stop()
        if self.watcher is not None:
            self.watcher.stop()
        grace = self.config.graceful_timeout if graceful else FAST_STOP_GRACE
        self.stop_deadline = now + grace
        for worker in list(self.workers.values()):
            self._stop_worker(worker, graceful=graceful, grace=grace)

    def announce_shutdown(self, delay: float) -> None:
        """--shutdown-delay: workers fail the health path at once and keep serving; the
        graceful stop begins ``delay`` seconds later (a load balancer's time to notice)."""
        self.shutdown_at = self.clock() + delay
        self.log.info("SIGTERM: failing health checks, serving %gs more before the graceful "
                      "stop", delay)
        for worker in self.workers.values():
            self._send_unready(worker)

    def _send_unready(self, worker: WorkerRecord) -> None:
        if worker.channel_open:
            with contextlib.suppress(ChannelClosed):
                worker.channel.send(Unready())

    def reload(self) -> list[int]:
        """Re-read the config file and replace every worker, each old one draining only once its
        replacement is ready, so no connection is refused. Returns the pids being replaced.

        Each reload starts from scratch: replacements of an earlier one still booting are
        stopped, and the boot failures of a failed one no longer hold forks back."""
        if self.stopping:
            return []
        self.reload_progress.abandon()
        call_hook(self.config, "on_reload", self.view, log=self.log)
        if self.reload_config is not None:
            try:
                config = settings_to_apply(self.config, self.reload_config, self.log)
                workers_changed = config.worker_count() != self.config.worker_count()
                self.config = self.view.cfg = config
                if workers_changed:
                    self.scale(config.worker_count())
            except (ConfigError, ValueError) as exc:
                self.log.error("reload: keeping the running configuration: %s", exc)
        self.policy = RestartPolicy(RestartSettings.from_config(self.config), clock=self.clock)
        for history in self.slots.values():
            history.next_fork_at = 0.0
        replaced = self.workers.active()
        collect_all()
        self.log.info("reloading: replacing %d workers", len(replaced))
        self.reload_progress.begin(replaced)
        for record in self._fork_all([self._prepare_fork(worker.slot) for worker in replaced]):
            record.reloading = True
        self.reload_progress.check_done()
        return [worker.pid for worker in replaced]

    def reload_for_changes(self, changed: list[str]) -> None:
        """--reload: watched files changed; a reload as on HUP."""
        shown = ", ".join(os.path.relpath(path) for path in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        self.log.info("reload: %s changed%s", shown, more)
        self.reload()

    def scale(self, count: int) -> None:
        """Run ``count`` workers (at least 1); raises ValueError above ``max_workers``."""
        count = max(1, count)
        if self.stopping or count == self.target:
            return
        if count > self.target and count > self.config.max_worker_count():
            raise ValueError(f"cannot scale to {count} workers: more than max_workers "
                             f"({self.config.describe_max_workers()})")
        self.log.info("scaling from %d to %d workers", self.target, count)
        old_target, self.target = self.target, count
        call_hook(self.config, "nworkers_changed", self.view, count, old_target, log=self.log)
        for slot in range(old_target, count):
            self.slots.setdefault(slot, SlotHistory())
        for slot in range(count, old_target):
            for worker in self.workers.in_slot(slot):
                self._stop_worker(worker, graceful=True, grace=self.config.graceful_timeout)
            self.policy.forget_slot(slot)

    def recycle(self, pid: int | None = None) -> list[int]:
        """Replace worker ``pid``, or every worker for None, one at a time: each old worker
        drains only once its replacement is ready. Returns the pids queued; raises LookupError
        for a pid that is not a live worker (or is already being replaced)."""
        return self.rolling.recycle(pid)

    def stats(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "pid": os.getpid(),
            "workers": [w.as_dict(now) for w in sorted(self.workers.values(), key=by_slot)],
            "target": self.target,
            "breaker": self.policy.state.value,
            "reload": dict(self.reload_progress.state),
            "restarts": {slot: history.restarts for slot, history in self.slots.items()},
            "slots": {slot: {"restarts": history.restarts, "last_exit": history.last_exit}
                      for slot, history in sorted(self.slots.items())},
            "ports": [ls.port for ls in self.listeners if ls.address.kind == "tcp"],
            "metrics_port": self.metrics.port,
        }

    # -- workers --------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> WorkerRecord:
        return self._fork_all([self._prepare_fork(slot)])[0]

    def _prepare_fork(self, slot: int) -> PendingFork:
        """Everything the fork of a worker into ``slot`` needs, made before any fork of a batch."""
        for listener in self.listeners:
            listener.ensure_slot(slot)
        arbiter_end, worker_end = Channel.pair()
        slot_sockets = [listener.for_slot(slot) for listener in self.listeners]
        self.age += 1
        view = WorkerView(0, os.getpid(), self.age, slot, self.config, self.log)
        block = self.metrics.before_fork()

        def start_worker() -> int:
            self.metrics.in_worker(block)
            arbiter_end.close()
            view.pid = os.getpid()
            call_hook(self.config, "post_fork", self.view, view, log=self.log)
            return self.worker_main(self.config, slot, worker_end, slot_sockets, view)

        self.policy.record_fork(slot)  # before the next slot asks may_fork (a half-open trial)
        return PendingFork(slot, arbiter_end, worker_end, slot_sockets, view, block, start_worker)

    def _fork_all(self, batch: list[PendingFork]) -> list[WorkerRecord]:
        """Fork the workers of ``batch`` back to back, then record them.

        A page the arbiter writes between two forks stays with the workers forked before the
        write and is copied for those after it, so whatever it writes there costs every worker
        a page of its own: the records, the log line and the rest of one spawn came to about 1 MB
        per worker (hello app). Between these forks it runs only the pre_fork hook and the fork."""
        pids: list[int] = []
        self._forking = batch  # each child closes what was made for the others
        try:
            for pending in batch:
                call_hook(self.config, "pre_fork", self.view, pending.view, log=self.log)
                pids.append(fork_worker(functools.partial(self._forget_arbiter_state, pending),
                                        pending.start_worker))
        finally:
            self._forking = []
            for pending in batch[len(pids):]:  # a fork failed: these never will
                pending.abandon()
        return [self._adopt(pending, pid) for pending, pid in zip(batch, pids, strict=False)]

    def _adopt(self, pending: PendingFork, pid: int) -> WorkerRecord:
        pending.worker_end.close()
        self.metrics.forked(pid, pending.block)
        now = self.clock()
        record = WorkerRecord(pid=pid, slot=pending.slot, channel=pending.arbiter_end,
                              started_at=now, last_seen=now,
                              restarts=self.slots[pending.slot].restarts, age=pending.view.age)
        self.workers[pid] = record
        self.selector.register(pending.arbiter_end.sock, selectors.EVENT_READ,
                               self._on_worker_message)
        self.log.info("Booting worker with pid: %d (slot %d)", pid, pending.slot)
        return record

    def _forget_arbiter_state(self, own: PendingFork) -> None:
        """In a fresh worker: drop everything that belongs to the arbiter."""
        keep = own.slot_sockets
        for pending in self._forking:
            if pending is not own:
                pending.abandon()
        self.signals.forget()
        self.selector.close()
        for worker in self.workers.values():
            worker.channel.close()
        self.embedder.close()
        if self.watcher is not None:
            self.watcher.forget()
        if self.control_socket is not None:
            self.control_socket.abandon()
        kept = {sock.fileno() for sock in keep}
        for listener in self.listeners:
            for sock in listener.all_sockets():
                if sock.fileno() not in kept:
                    sock.close()

    def _stop_worker(self, worker: WorkerRecord, graceful: bool, grace: float) -> None:
        if worker.stop_requested and graceful:
            return
        worker.stop_requested = True
        worker.state = WorkerState.DRAINING
        worker.stop_deadline = self.clock() + grace
        self._signal_worker(worker, signal.SIGTERM if graceful else signal.SIGQUIT)

    def _stop_gracefully(self, worker: WorkerRecord) -> None:
        self._stop_worker(worker, graceful=True, grace=self.config.graceful_timeout)

    def _signal_worker(self, worker: WorkerRecord, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)

    def _on_worker_message(self, key: selectors.SelectorKey) -> None:
        worker = next((w for w in self.workers.values() if w.channel.sock is key.fileobj), None)
        if worker is None:
            return
        try:
            messages = worker.channel.receive()
        except ChannelClosed:
            self._close_channel(worker)
            return
        now = self.clock()
        for msg, fds in messages:
            for fd in fds:
                os.close(fd)
            worker.last_seen = now
            if isinstance(msg, Heartbeat):
                worker.requests, worker.in_flight = msg.requests, msg.in_flight
                worker.connections = msg.connections
            elif isinstance(msg, Ready):
                self._on_ready(worker, now)
            elif isinstance(msg, BootFailed):
                self.exits.boot_failed(worker, msg.reason, msg.details)
            elif isinstance(msg, Retiring):
                self.rolling.request(worker, msg.reason)
            elif isinstance(msg, AppMessage):
                call_hook(self.config, "on_message", self.view, WorkerView(
                    worker.pid, os.getpid(), worker.age, worker.slot, self.config, self.log),
                    msg.data, log=self.log)
            elif isinstance(msg, BroadcastRequest):
                self._broadcast(msg.data, worker.pid)

    def _broadcast(self, data: Any, origin: int) -> int:
        """prefork.messages.broadcast: every worker with an open channel, the sender included."""
        return relay_broadcast([(w.pid, w.channel) for w in self.workers.values()
                                if w.channel_open], data, origin, self.log)

    def _close_channel(self, worker: WorkerRecord) -> None:
        if worker.channel_open:
            worker.channel_open = False
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.channel.sock)
            worker.channel.close()

    def _on_ready(self, worker: WorkerRecord, now: float) -> None:
        worker.ready_at = now
        if worker.stop_requested:
            return
        worker.state = WorkerState.SERVING
        worker.reloading = False
        self.policy.record_ready(worker.slot)
        self.log.info("worker %d (slot %d) ready in %.3fs", worker.pid, worker.slot,
                      now - worker.started_at)
        # A worker that replaces a retiring one lets the old one drain only now.
        for old in self.workers.in_slot(worker.slot):
            if old is not worker and old.retiring:
                self._stop_worker(old, graceful=True, grace=self.config.graceful_timeout)
                self.reload_progress.replaced(old.pid)
        self.reload_progress.check_done()
        if self.shutdown_at is not None:
            self._send_unready(worker)
        self.embedder.announce_ready(
            sum(w.state is WorkerState.SERVING for w in self.workers.values()) >= self.target,
            self.stats)

    # -- reaping and deadlines ------------------------------------------------------------------

    def _reap(self) -> None:
        exited: list[tuple[int, int]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            exited.append((pid, status))
        if not exited:
            return
        self._take_stop_signals()
        for pid, status in exited:
            worker = self.workers.pop(pid, None)
            if worker is not None:
                if self.config.kill_worker_group and os.WIFSIGNALED(status):
                    # killed before it could end its group (--kill-worker-group)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                self._on_worker_exit(worker, status)
            elif pid == self.upgrade.pid:
                self._on_upgrade_exit(status)
            elif self.watcher is not None and pid == self.watcher.pid:
                self.watcher.exited(status, stopping=bool(self.stopping))

    def _take_stop_signals(self) -> None:
        """Begin a stop that is already on its way before judging the exits just reaped.

        A TERM or INT sent to the whole process group (systemd's default KillMode, a shell's
        ``docker stop``, Ctrl-C) reaches the workers too, and they exit by themselves. The
        kernel made it pending here when it did there, and delivers pending signals on the
        return from ``waitpid``, so the signal's byte is already in the wakeup pipe when an
        exit it caused is reaped: read it first, and those exits are stops, not crashes."""
        for signum in self.signals.take_stops():
            getattr(self, f"handle_{signal.Signals(signum).name.lower()}")()

    def _on_worker_exit(self, worker: WorkerRecord, status: int) -> None:
        now = self.clock()
        # Messages it sent just before dying (its boot failure reason) are still queued.
        if worker.channel_open:
            with contextlib.suppress(ChannelClosed):
                for msg, _fds in worker.channel.receive():
                    if isinstance(msg, BootFailed):
                        self.exits.boot_failed(worker, msg.reason, msg.details)
        self._close_channel(worker)
        lifetime = now - worker.started_at
        # Once a stop is announced or begun, workers that leave were told to (or got the same
        # group signal as the arbiter): never a crash, never refilled.
        crashed = not (worker.stop_requested or self.stopping or self.shutdown_at is not None)
        history = self.slots.setdefault(worker.slot, SlotHistory())
        history.last_exit = describe_status(status)
        failed_reload = worker.reloading and crashed
        description = self.exits.report(worker, status, crashed=crashed, lifetime=lifetime,
                                        failed_reload=failed_reload)
        self.rolling.gone(worker.pid)
        self.reload_progress.replaced(worker.pid)
        if failed_reload:
            # A failed reload stops at its first boot failure and keeps the old workers: no
            # loop for the breaker to catch, and no backoff for the slot they still fill.
            self.reload_progress.failed(worker, description,
                                        self.exits.reload_failure_details(worker))
            crashed = False
        self.reload_progress.check_done()
        self.policy.record_exit(worker.slot, crashed=crashed, lifetime=lifetime,
                                was_ready=worker.ready_at is not None)
        self.metrics.worker_exited(worker, crashed=crashed, stopping=bool(self.stopping),
                                   target=self.target)
        call_hook(self.config, "child_exit", self.view,
                  WorkerView(worker.pid, os.getpid(), worker.age, worker.slot, self.config,
                             self.log), log=self.log)
        if crashed:
            history.restarts += 1
            delay = self.policy.fork_delay(worker.slot)
            history.next_fork_at = now + delay
            if delay > 0 and not self.stopping:
                self.log.info("slot %d will be refilled in %.1fs", worker.slot, delay)

    def _on_upgrade_exit(self, status: int) -> None:
        """The new arbiter of a binary upgrade died while this one still runs: take back."""
        self.upgrade.new_arbiter_exited(self.config.pidfile)
        if self.control_socket is not None:
            self.control_socket.reclaim()
        self.log.error("the new arbiter of the binary upgrade exited (%s); still serving",
                       describe_status(status))

    def _maintain(self) -> None:
        self._reap()
        now = self.clock()
        check_deadlines(self.workers.values(), now, self.config.timeout, self._signal_worker,
                        self.log)
        if self.control_socket is not None:
            self.control_socket.expire(now)
        self.metrics.tick(now)
        if self.stopping:
            if now > self.stop_deadline:
                for worker in self.workers.values():
                    if worker.abort_sent_at is None:
                        worker.abort_sent_at = now
                        self._signal_worker(worker, signal.SIGKILL)
            return
        if self.shutdown_at is not None and now >= self.shutdown_at:
            self.begin_stop(graceful=True)
            return
        if self.watcher is not None and (changed := self.watcher.take_due(now)) \
                and self.shutdown_at is None:
            self.reload_for_changes(changed)
        sample_workers(self.workers.values(), now)
        self.rolling.review(now, self.config)
        self.rolling.start_next()
        batch: list[PendingFork] = []
        for slot in range(self.target):
            if self.workers.slot_is_filled(slot) or now < self.slots[slot].next_fork_at:
                continue
            if self.shutdown_at is not None:
                break  # a stop is announced: what leaves now is not replaced
            if not self.policy.may_fork() or self.policy.crash_budget_spent(
                    self.workers.booting() + len(batch)):
                break
            batch.append(self._prepare_fork(slot))
        if batch:
            self._fork_all(batch)
        serving = {w.slot for w in self.workers.serving()}
        self.hand_off.follow(self.listeners, serving, self.config.dispatch_mode())
        self.hand_off.release_slots(self.listeners, self.target,
                                    {w.slot for w in self.workers.values()})
        self._check_breaker(now)

    def _check_breaker(self, now: float) -> None:
        if self.policy.may_fork() or any(
            w.state is not WorkerState.DRAINING for w in self.workers.values()
        ):
            return
        reason = self.exits.last_boot_reason or "workers keep crashing"
        log_stop_reason(
            self.log, "circuit breaker open: %d worker crashes within %gs and no worker left; "
            "exiting. Last error: %s", self.policy.recent_crashes, self.config.breaker_window,
            reason)
        self.embedder.reply("failed", {"reason": reason})
        self.exit_code = ARBITER_EXIT_BOOT_FAILED
        self.stopping = "fast"

    # -- embedder control -----------------------------------------------------------------------

    def _on_control(self, _key: selectors.SelectorKey) -> None:
        commands = self.embedder.commands(self.selector)
        if commands is None:  # the embedder is gone: nobody will stop us, so stop now
            self.begin_stop(graceful=True)
            return
        for command in commands:
            if (reply := carry_out(command, self)) is not None:
                self.embedder.reply(*reply)

    def _close(self) -> None:
        self.signals.detach()
        for listener in self.listeners:
            listener.close()
        if self.control_socket is not None:
            self.control_socket.close()
        self.metrics.close()
        if self.watcher is not None:
            self.watcher.close()
        self.selector.close()
        self.signals.close()
        failure = ""
        if self.exit_code == ARBITER_EXIT_BOOT_FAILED:  # the last line says why, for tail -1
            failure = f": {self.exits.last_boot_reason or 'workers keep crashing'}"
        self.log.info("arbiter %d exiting with status %d%s", os.getpid(), self.exit_code, failure)


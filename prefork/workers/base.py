"""A worker's life after fork: load the app, start serving, heartbeat, recycle, drain, exit.

The worker runs one uvloop event loop. It reports to the arbiter over its control channel
(``Ready``, ``Heartbeat`` with its counters, ``BootFailed``, ``Retiring``) and treats the end of
that channel as the arbiter's death: it then drains and exits by itself. Signals: TERM drains
gracefully, INT/QUIT stop at once, USR1 reopens log files, ABRT (the heartbeat watchdog) dumps
every thread's stack through ``faulthandler`` and kills the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import gc
import importlib
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefork.app import AppSpec, app_traceback, load_app, resolve_interface
from prefork.config import Config
from prefork.errors import (
    WORKER_EXIT_ABORTED,
    WORKER_EXIT_APP_LOAD_FAILED,
    WORKER_EXIT_BOOT_FAILED,
    WORKER_EXIT_OK,
    WORKER_EXIT_ORPHANED,
    AppLoadError,
    BootError,
)
from prefork.hooks import ServerView, WorkerView, call_hook
from prefork.http.limits import Limits
from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import (
    BootFailed,
    Broadcast,
    Connections,
    Drain,
    Heartbeat,
    Ready,
    Retiring,
    Unready,
)
from prefork.logs.access_log import AccessLog
from prefork.logs.error_log import ERROR_LOGGER, OncePerSecond, reopen_log_files
from prefork.messages import attach_worker, deliver_broadcast
from prefork.sockets import RESOURCE_ERRORS, tls_context
from prefork.system.pages import release_zero_pages
from prefork.system.process import capture_output
from prefork.system.procstat import MIB, PAGE_SIZE
from prefork.workers.contract import Serving
from prefork.workers.memory_check import RequestMemoryCheck
from prefork.workers.protocol import HttpProtocol
from prefork.workers.serving import ServingState, listener_address

# Imported with this module, which the arbiter imports before it forks (prefork.server), so
# that the workers share it.
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from prefork.asgi.lifespan import Lifespan
    from prefork.metrics.recorder import RequestRecorder

HEARTBEAT_MAX_INTERVAL = 1.0
# Characters of an app's traceback sent to the arbiter: one control datagram must hold it, and a
# Unix socket's send buffer is 212,992 bytes by default on Linux.
MAX_BOOT_DETAILS = 32 * 1024


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed, the standard loop otherwise."""
    if uvloop is None:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def warm_event_loop() -> None:
    """Run a throwaway event loop once, as the arbiter does before it forks its workers.

    What asyncio and uvloop make the first time a loop runs in a process (the default policy,
    the state ``_asyncio`` sets up for its first task, what the loop's first run initialises)
    is then made once, before the fork, and shared, instead of being made in each worker, and
    each worker's first loop touches fewer of the pages it shares with the arbiter. The loop
    leaves nothing behind: it is closed, and the signal wakeup fd it set while running is put
    back as it was (the arbiter sets its own later)."""
    asyncio.get_event_loop_policy()
    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


# What a worker of each interface imports once it knows its app's interface: modules that the
# arbiter imports before the fork are shared with every worker instead of copied into each.
INTERFACE_MODULES = {
    "asgi": ("prefork.asgi.ready", "prefork.asgi.cycle", "prefork.asgi.lifespan"),
    "wsgi": ("prefork.wsgi.cycle", "prefork.wsgi.environ", "prefork.wsgi.filewrapper"),
}


def import_interface_modules(interface: str) -> None:
    """Import the serving modules of ``interface`` ("auto": of both), as the arbiter does before
    it forks its workers.

    Imported after the fork, each worker builds its own copy of these modules' objects, and
    importing touches (and so copies) pages it shares with the arbiter. Measured on Python 3.11
    with the compiled build (``bench/footprint.py``, hello world, eight workers, with the
    setproctitle check also remembered): the total PSS fell from 74.2 to 62.8 MB on WSGI and
    from 66.0 to 63.1 MB on ASGI. Under ``auto`` the app's interface is known only once a
    worker has loaded it, so both sets are imported: an ASGI app's eight workers and arbiter
    then take 64.8 MB, 1.7 more than with ``--interface asgi``, where a WSGI app's spare 11."""
    for name in INTERFACE_MODULES.get("wsgi" if interface == "wsgi" else "asgi", ()):
        importlib.import_module(name)
    if interface == "auto":
        for name in INTERFACE_MODULES["wsgi"]:
            importlib.import_module(name)


class Worker:
    """One worker process; ``run()`` returns its exit code (see ``prefork.errors``)."""

    def __init__(
        self,
        config: Config,
        slot: int,
        channel: Channel,
        listeners: list[socket.socket],
        app: AppSpec | str | Callable[..., Any],
        view: WorkerView | None = None,
        proc_name: str = "prefork",
    ) -> None:
        self.config = config
        self.view = view or WorkerView(os.getpid(), os.getppid(), 0, slot, config,
                                       logging.getLogger(ERROR_LOGGER))
        self.slot = slot
        self.channel = channel
        self.listeners = listeners
        self.app_source = app
        self.proc_name = proc_name  # the worker_exit hook's server.proc_name
        self.log = logging.getLogger(ERROR_LOGGER)
        self.exit_code = WORKER_EXIT_OK
        jitter = random.randint(0, config.max_requests_jitter) if config.max_requests else 0
        self.max_requests = config.max_requests + jitter if config.max_requests else 0
        self.retiring_sent = False
        self.memory_check: RequestMemoryCheck | None = None
        if config.max_worker_memory:
            limit = config.max_worker_memory + random.random() * config.max_worker_memory_jitter
            self.memory_check = RequestMemoryCheck(int(limit * MIB))
        self._statm = -1  # /proc/self/statm, kept open for the memory check (one pread a reading)
        self._fd_limit_warning = OncePerSecond()
        self._stopped: asyncio.Future[None] | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._next_beat: asyncio.TimerHandle | None = None
        self.state: ServingState | None = None
        self.tls = tls_context(config)

    # -- process entry --------------------------------------------------------------------------

    def run(self) -> int:
        capture_output(self.config)
        faulthandler.enable(file=sys.stderr, all_threads=True)
        attach_worker(self.channel, self.view, self.config)  # prefork.messages.send() from app code
        # SIGABRT comes from the heartbeat watchdog: dump every thread's stack, give the
        # worker_abort hook its chance, and go. If the loop is stuck in C code this handler
        # never runs and the arbiter's SIGKILL follows.
        signal.signal(signal.SIGABRT, self._on_abort)
        if self.config.kill_worker_group:
            os.setpgid(0, 0)  # what the app starts stays in this group, ended with the worker
        loop = new_event_loop()
        # uvloop's loop holds its read buffer inline, zeroed as the loop was made: 250 kB of
        # private pages per worker that reads never reach past the first of (prefork.system.pages)
        release_zero_pages(loop)
        try:
            return loop.run_until_complete(self._main(loop))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self.view.alive = False
            server = ServerView(self.view.ppid, self.config, self.log, dict,
                                self.config.worker_count, proc_name=self.proc_name)
            call_hook(self.config, "worker_exit", server, self.view, log=self.log)
            if self.config.kill_worker_group:
                end_process_group()

    def _on_abort(self, _signum: int, _frame: object) -> None:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        call_hook(self.config, "worker_abort", self.view, log=self.log)
        if self.config.kill_worker_group:
            end_process_group()
        os._exit(WORKER_EXIT_ABORTED)

    def _boot_failed(self, reason: str, code: int, details: str = "") -> int:
        if len(details) > MAX_BOOT_DETAILS:  # the innermost frames and the error are at the end
            details = "...\n" + details[-MAX_BOOT_DETAILS:]
        with contextlib.suppress(ChannelClosed):
            self.channel.send(BootFailed(reason=reason, details=details))
        return code

    async def _main(self, loop: asyncio.AbstractEventLoop) -> int:
        try:
            app = self.app_source if callable(self.app_source) else load_app(
                self.app_source, factory=self.config.factory)
            self.view.wsgi = app  # as loaded, before an ASGI 2 app is wrapped
            interface, app = resolve_interface(app, self.config.app_interface())
        except AppLoadError as exc:
            # The arbiter logs it: the traceback once, however many workers fail the same way.
            return self._boot_failed(str(exc), WORKER_EXIT_APP_LOAD_FAILED, app_traceback(exc))
        lifespan: Lifespan | None = None
        if interface == "asgi":  # WSGI has no lifespan protocol
            # The thread's current loop, for asyncio.get_event_loop() outside a coroutine; a
            # WSGI worker sets none, so that its app finds none, as under gunicorn (see
            # prefork.wsgi.cycle).
            asyncio.set_event_loop(loop)
            from prefork.asgi.lifespan import Lifespan

            lifespan = Lifespan(app, mode=self.config.lifespan, logger=self.log)
            try:
                await lifespan.startup()
            except BootError as exc:  # the arbiter logs it, once for repeated failures
                return self._boot_failed(str(exc), WORKER_EXIT_BOOT_FAILED, app_traceback(exc))

        self._stopped = loop.create_future()
        # What exists now (the app, its modules, what its start-up built) lives as long as the
        # worker: take it out of the collector's generations, so that a collection caused by
        # some request's garbage does not walk it all again.
        gc.freeze()
        if self.memory_check is not None:
            try:
                self._statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # no /proc: the arbiter's samples, from /proc too, see nothing either
                self.memory_check = None
        executor = None
        serving: Serving
        if interface == "wsgi":
            serving, executor = self._wsgi_serving()
        else:
            from prefork.asgi.cycle import AsgiServing

            serving = AsgiServing(self.config, lifespan.state if lifespan else {}, loop)
        access_log = AccessLog(
            self.config.accesslog, self.config.access_format(),
            externally_configured=bool(self.config.logconfig or self.config.logconfig_dict))
        self.state = ServingState(self.config, app, serving, self._on_request_done,
                                  counting_requests=self.memory_check is not None,
                                  access_log=access_log, worker_view=self.view,
                                  metrics=self._request_recorder(loop))
        for signum, handler in (
            (signal.SIGTERM, self.drain), (signal.SIGINT, self.stop_now),
            (signal.SIGQUIT, self.stop_now), (signal.SIGUSR1, self._reopen_logs),
        ):
            loop.add_signal_handler(signum, handler)
        for sock in self.listeners:
            if self.config.dispatch_mode() == "roundrobin":
                sock.close()  # the arbiter accepts; keeping the fd would only pin the port
                continue
            # a C callable: no Python frame per connection
            protocol = functools.partial(HttpProtocol, self.state, listener_address(sock))
            server = await loop.create_server(protocol, sock=sock, ssl=self.tls,
                                              backlog=self.config.backlog)
            self._servers.append(server)
        loop.add_reader(self.channel.fileno(), self._on_channel, loop)
        self.view.booted = True
        call_hook(self.config, "post_worker_init", self.view, log=self.log)
        self.channel.send(Ready(pid=os.getpid()))
        self._beat(loop)
        await self._stopped
        if self._next_beat is not None:
            self._next_beat.cancel()
        await self._finish_connections()
        if executor is not None:
            # Threads still running an app hold no connection any more; the process exits
            # with os._exit, so they are not waited for.
            executor.shutdown(wait=False, cancel_futures=True)
        if lifespan is not None:
            await lifespan.shutdown()
        return self.exit_code

    def _request_recorder(self, loop: asyncio.AbstractEventLoop) -> RequestRecorder | None:
        """The built-in request metrics, or None when neither ``--metrics-bind`` nor
        ``--statsd-host`` is set; then the metrics package is not even imported."""
        if not self.config.metrics_bind and not self.config.statsd_host:
            return None
        from prefork.metrics.recorder import request_recorder

        return request_recorder(self.config, loop, self.log)

    def _wsgi_serving(self) -> tuple[Serving, ThreadPoolExecutor | None]:
        """The WSGI interface, and its thread pool when ``--threads`` > 1.

        The WSGI modules (and the thread pool's) are imported here, so that an ASGI worker
        never loads them (about 20 ms of its start-up while Python compiles them)."""
        from prefork.wsgi.cycle import WsgiRunner
        from prefork.wsgi.environ import ErrorStream, base_environ
        from prefork.wsgi.filewrapper import FileWrapper

        config = self.config
        threads = config.threads
        executor = None
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            executor = ThreadPoolExecutor(threads, thread_name_prefix="prefork-wsgi")
        environ = base_environ(root_path=config.root_path, errors=ErrorStream(self.log),
                               multithread=threads > 1, multiprocess=config.worker_count() > 1,
                               file_wrapper=FileWrapper)
        return WsgiRunner(environ, executor, Limits().max_buffer), executor

    def _protocol(self) -> HttpProtocol:
        assert self.state is not None
        return HttpProtocol(self.state)

    # -- control channel ------------------------------------------------------------------------

    def _on_channel(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            messages = self.channel.receive()
        except ChannelClosed:
            loop.remove_reader(self.channel.fileno())
            self.log.warning("worker %d: the arbiter is gone; stopping", os.getpid())
            self.exit_code = WORKER_EXIT_ORPHANED
            self.drain()
            return
        for msg, fds in messages:
            if isinstance(msg, Connections) and not self._draining():
                for fd in fds:
                    sock = socket.socket(fileno=fd)
                    loop.create_task(self._adopt(loop, sock))
            else:
                for fd in fds:
                    os.close(fd)
                if isinstance(msg, Drain):
                    self.drain()
                elif isinstance(msg, Unready) and self.state is not None:
                    self.state.unready = self.state.closing_connections = True
                elif isinstance(msg, Broadcast):
                    deliver_broadcast(msg)

    async def _adopt(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(self._protocol, sock, ssl=self.tls)
        except OSError:
            sock.close()

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report to the arbiter, and again after the heartbeat interval. A timer callback
        rather than a task that sleeps: asyncio.sleep's first use in a fresh worker touches
        pages of asyncio's tasks module that it would otherwise share with the arbiter."""
        assert self.state is not None
        counters = self.state.counters
        with contextlib.suppress(ChannelClosed):
            self.channel.send(Heartbeat(requests=counters.requests, in_flight=counters.in_flight,
                                        connections=len(self.state.connections)))
        self._check_open_files()
        interval = HEARTBEAT_MAX_INTERVAL
        if self.config.timeout:
            interval = min(interval, self.config.timeout / 4)
        self._next_beat = loop.call_later(interval, self._beat, loop)

    def _on_request_done(self, total: int) -> None:
        if self.retiring_sent:
            return
        if self.max_requests and total >= self.max_requests:
            self._retire(f"served {total} requests (max-requests)")
        check = self.memory_check
        if check is not None and check.due(total):
            try:
                rss = int(os.pread(self._statm, 64, 0).split()[1]) * PAGE_SIZE
            except (OSError, ValueError, IndexError):
                return  # no reading: the arbiter's once-a-second samples still apply
            reason = check.review(rss, total)
            if reason is not None:
                self._retire(reason)

    def _retire(self, reason: str) -> None:
        """Ask the arbiter for a rolling replacement (once)."""
        if not self.retiring_sent:
            self.retiring_sent = True
            with contextlib.suppress(ChannelClosed):
                self.channel.send(Retiring(reason=reason))

    def _check_open_files(self) -> None:
        """At the open-files limit a worker loses connections without a word: in reuseport mode
        libuv (under uvloop's server) accepts each new one and closes it at once (its EMFILE
        trick), and in roundrobin mode the descriptors the arbiter passes do not fit and the
        kernel closes them. A dup that fails with EMFILE shows this worker at the limit: say
        so, at most once a second, as the arbiter does for its own accept failures. Checked at
        each heartbeat (at most a second apart): two syscalls."""
        try:
            os.close(os.dup(self.channel.fileno()))
        except OSError as exc:
            if exc.errno in RESOURCE_ERRORS and self._fd_limit_warning.ready():
                self.log.error("worker %d: at the open-files limit (%s): new connections are "
                               "closed unanswered; raise ulimit -n or lower "
                               "--worker-connections", os.getpid(), exc.strerror)

    def _reopen_logs(self) -> None:
        reopen_log_files(self.log)
        if self.state is not None:
            self.state.access_log.reopen()

    # -- stopping -------------------------------------------------------------------------------

    def _draining(self) -> bool:
        return self._stopped is None or self._stopped.done()

    def drain(self) -> None:
        """Stop accepting; in-flight requests finish, and every connection closes after
        answering what reaches it, or once idle for a moment (``HttpProtocol.shutdown``)."""
        if self._draining():
            return
        for server in self._servers:
            server.close()
        assert self._stopped is not None and self.state is not None
        self.state.draining = True
        self.state.closing_connections = True
        self._stopped.set_result(None)

    def stop_now(self) -> None:
        """Close every connection at once and exit."""
        call_hook(self.config, "worker_int", self.view, log=self.log)
        if self.state is not None:
            for protocol in list(self.state.connections):
                protocol.abort()
        if not self._draining():
            self.drain()

    async def _finish_connections(self) -> None:
        assert self.state is not None
        for protocol in list(self.state.connections):
            protocol.shutdown()
        deadline = asyncio.get_running_loop().time() + self.config.graceful_timeout
        while self.state.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for protocol in list(self.state.connections):
            protocol.abort()
        self.state.starter.close()  # the idle tasks that lend themselves to requests


def end_process_group() -> None:
    """SIGTERM to the rest of this worker's own process group (``--kill-worker-group``): the
    processes the app started, which would otherwise outlive the server's stop."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker is in the group too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpid(), signal.SIGTERM)


def worker_main(app: AppSpec | str | Callable[..., Any], proc_name: str = "prefork") -> Callable[
        [Config, int, Channel, list[socket.socket], WorkerView], int]:
    """The function the arbiter calls in each forked child."""

    def main(config: Config, slot: int, channel: Channel, listeners: list[socket.socket],
             view: WorkerView) -> int:
        return Worker(config, slot, channel, listeners, app, view, proc_name).run()

    return main

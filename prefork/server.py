"""Running an arbiter: in this process (``serve``, the CLI) or in a child (``Server``).

``Server`` forks an arbiter and talks to it over a control channel: ``start()`` returns once every
worker is ready and the bound ports are known; ``stats()``, ``reload()``, ``scale()`` and
``stop()`` are commands on that channel or signals to the arbiter's pid. The arbiter stops by
itself if the embedding process goes away.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from prefork.app import (
    AppSpec,
    app_traceback,
    check_app_spec,
    load_app,
    parse_app_spec,
    resolve_interface,
)
from prefork.arbiter.arbiter import Arbiter, WorkerMain
from prefork.arbiter.control import open_control_socket
from prefork.arbiter.watcher import CodeWatcher
from prefork.arbiter.watchplan import plan_watch
from prefork.config import SETTINGS_BY_NAME, Config
from prefork.errors import AppLoadError, BootError, ConfigError, PreforkError
from prefork.hooks import ServerView, WorkerView, call_hook
from prefork.http.parsers import choose_parser
from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import Command, Reply
from prefork.logs.error_log import configure_error_log, configure_logging_from
from prefork.metrics.collector import MetricsCollector
from prefork.sockets import open_listeners, tls_context
from prefork.sources import IGNORED_KEY, load_config_file
from prefork.system.process import (
    apply_environment,
    apply_umask,
    drop_privileges,
    prepare_title,
    process_name,
    set_title,
)
from prefork.version import __version__, build
from prefork.workerclass import adopt_worker_class

AppSource = str | Callable[..., Any]


def prepare_app(config: Config, app: AppSource) -> AppSpec | Callable[..., Any]:
    """Check (or, with preload, import) the app before any fork; raises AppLoadError.

    Returns what the workers load: the loaded app, or the spec parsed here once, so that no
    worker runs the spec's parser (``ast``) and copies the pages its code shares with the
    arbiter."""
    if config.chdir:
        try:
            os.chdir(config.chdir)
        except OSError as exc:
            raise BootError(f"chdir: cannot change to {config.chdir}: {exc.strerror}") from None
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    add_pythonpath(config)
    if not isinstance(app, str):
        resolve_interface(app, config.app_interface())
        return app
    spec = parse_app_spec(app)
    if not config.preload_app:
        check_app_spec(spec)
        return spec
    loaded = load_app(spec, factory=config.factory)
    _, ready = resolve_interface(loaded, config.app_interface())
    return ready


def add_pythonpath(config: Config) -> None:
    """Put ``pythonpath``'s directories at the front of ``sys.path``, in the order given,
    relative ones from the current directory (``chdir`` has been applied), as gunicorn does
    before it loads the app; the workers inherit the path through the fork."""
    if not config.pythonpath:
        return
    directories = [os.path.abspath(part.strip()) for part in config.pythonpath.split(",")
                   if part.strip()]
    for directory in reversed(directories):
        if directory not in sys.path:
            sys.path.insert(0, directory)


def run_arbiter(config: Config, app: AppSource, control: Channel | None = None,
                reload_config: Callable[[], Config] | None = None,
                upgrade_command: list[str] | None = None,
                notices: list[str] | None = None) -> int:
    """Bind, fork workers and supervise them until stopped; returns the exit status.

    ``reload_config`` re-reads every settings source on SIGHUP; by default the config file (if
    any) is re-read under the settings given here.
    """
    if reload_config is None:
        reload_config = _file_reloader(config)
    if config.print_config:
        for name, value in sorted(dataclasses.asdict(config).items()):
            print(f"{name:28} = {printable_value(config, name, value)}")
        return 0
    prepare_title()
    apply_environment(config)
    apply_umask(config)
    logger = configure_error_log(config.errorlog, config.loglevel, config.log_format)
    configure_logging_from(config)
    for notice in notices or ():
        logger.warning(notice)
    tls_context(config)  # a bad certificate fails here, in one line, before any fork
    parser = choose_parser(config.http)  # so does a parser that is not installed
    if config.check_config:
        source = prepare_app(config, app)
        if isinstance(source, AppSpec):
            resolve_interface(load_app(source, factory=config.factory), config.app_interface())
        print(f"prefork: configuration OK, application {app if isinstance(app, str) else ''} "
              "loads", file=sys.stderr)
        return 0
    label = app_label(app)
    starting = ServerView(os.getpid(), config, logger, dict, config.worker_count,
                          proc_name=process_name(config, label))
    # gunicorn calls it when it first sets the worker count, before on_starting
    call_hook(config, "nworkers_changed", starting, config.worker_count(), None, log=logger)
    call_hook(config, "on_starting", starting, log=logger)
    try:
        source = prepare_app(config, app)
    except AppLoadError as exc:
        if details := app_traceback(exc):  # once; the error itself is the caller's last line
            logger.error("cannot load the application:\n%s", details)
        raise
    watcher = code_watcher(config, app, logger)
    listeners = open_listeners(config.listen_addresses(), config.backlog,
                               config.dispatch_mode())
    if config.pidfile:
        try:
            _write_pidfile(config.pidfile)
        except OSError as exc:
            for listener in listeners:
                listener.close()
            raise BootError(f"pidfile: cannot write {config.pidfile}: "
                            f"{exc.strerror or exc}") from None
    control_socket = None
    metrics: MetricsCollector | None = None
    try:
        control_socket = open_control_socket(config, logger)  # chowned to the user we drop to
        metrics = MetricsCollector.open(config, logger)  # --metrics-bind may be a low port
        drop_privileges(config)
    except PreforkError:
        if metrics is not None:
            metrics.close()
        if control_socket is not None:
            control_socket.close()
        for listener in listeners:
            listener.close()
        raise
    set_title(config, "arbiter", label)
    # gunicorn's first line; here once the input proved good, which bad input's one line needs
    logger.info("Starting prefork %s (%s)", __version__, build())
    try:
        main = _worker_main(source, parser, label, config.app_interface(), config.http2)
        arbiter = Arbiter(config, listeners, main, logger, control,
                          reload_config=reload_config, upgrade_command=upgrade_command,
                          control_socket=control_socket, metrics=metrics,
                          proc_name=process_name(config, label), watcher=watcher)
        return arbiter.run()
    finally:
        metrics.close()  # closed by the arbiter already, unless it failed to start
        if control_socket is not None:
            control_socket.close()  # the arbiter closed it already, unless it failed to start
        if config.pidfile:
            # after a binary upgrade the pidfile is the new arbiter's; ours is .oldbin
            for path in (config.pidfile, config.pidfile + ".oldbin"):
                _remove_if_ours(path)


def check_reload(config: Config, app: AppSource) -> None:
    """--reload needs workers that import the app themselves: raises ConfigError for an app
    object, or for an import string whose module this process imported already (each worker,
    forked from it, would find the old module in ``sys.modules``)."""
    if not config.reload:
        return
    if not isinstance(app, str):
        raise ConfigError("reload: needs the application as an import string (module:attribute); "
                          "an app object cannot be imported again")
    module = parse_app_spec(app).module
    if module in sys.modules:
        raise ConfigError(f"reload: module {module!r} is already imported in this process, "
                          "so the workers would keep its old code; serve it from a process "
                          "that does not import it")


def code_watcher(config: Config, app: AppSource, logger: logging.Logger) -> CodeWatcher | None:
    """The watcher of --reload (not started yet), the watched directories taken from the
    current directory (``chdir`` applied); None without --reload. Raises ConfigError."""
    if not config.reload:
        return None
    check_reload(config, app)
    if importlib.util.find_spec("watchfiles") is None:
        raise ConfigError("reload: needs the watchfiles package (pip install watchfiles)")
    plan = plan_watch(config.reload_dirs, config.reload_includes, config.reload_excludes,
                      config.reload_extra_files, os.getcwd())
    return CodeWatcher(plan, config.reload_engine, logger)


OCTAL_SETTINGS = frozenset({"umask", "control_socket_mode"})


def printable_value(config: Config, name: str, value: Any) -> str:
    """A setting as --print-config shows it: as a config file would spell it, with modes in
    octal (as gunicorn users write them) and ``auto`` workers next to what they resolve to."""
    if name in OCTAL_SETTINGS:
        return f"0o{value:03o}"
    if name == "workers" and value == 0:
        return f"'auto'  # {config.worker_count()} here"
    return repr(value)


def app_label(app: AppSource) -> str:
    """The app as the titles name it: the spec as given, or an app object's module:name."""
    if isinstance(app, str):
        return app
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    return f"{getattr(app, '__module__', None) or type(app).__module__}:{name}"


def _worker_main(app: AppSpec | Callable[..., Any], parser: str, label: str, interface: str,
                 http2: bool) -> WorkerMain:
    """What the arbiter runs in each forked child.

    The serving stack (asyncio and uvloop, the worker and its protocol, the HTTP ``parser``, the
    ``interface``'s modules) is imported here, before any fork, so that the workers share its
    pages with the arbiter rather than each importing a copy after the fork: measured with the
    hello app on Python 3.11, a worker's private memory falls from 12.5 to 5.8 MB and the total
    PSS of eight workers from 124 to 74 MB; workers start sooner. The arbiter's RSS grows from
    20 to 28 MB, mostly libssl's and libcrypto's pages (asyncio brings ssl), which the workers
    share too. The app is still imported in each worker, after the fork, unless
    ``--preload``. The HTTP/2 side (``h2``) only with ``--http2``."""
    from prefork.http.parsers import load_backend
    from prefork.workers.base import import_interface_modules, warm_event_loop, worker_main

    load_backend(parser)
    import_interface_modules(interface)
    warm_event_loop()
    if http2:
        import prefork.workers.h2_session  # noqa: F401

    def main(config: Config, slot: int, channel: Channel, listeners: list[socket.socket],
             view: WorkerView) -> int:
        set_title(config, "worker", label)
        return worker_main(app, process_name(config, label))(config, slot, channel, listeners,
                                                             view)

    return main


def _write_pidfile(path: str) -> None:
    """Write our pid with mode 0o644, never through a symlink planted at ``path``.

    O_NOFOLLOW makes open fail (ELOOP) where the last component is a symlink, so a user who can
    write the pidfile's directory cannot redirect the arbiter's write (often made as root) onto
    another file. The explicit fchmod gives 0o644 whatever the umask, and also to a pidfile left
    by an earlier run; it is skipped for a file someone else owns, where it could only fail."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PIDFILE_MODE)
    with open(fd, "w", encoding="ascii") as handle:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, PIDFILE_MODE)
        handle.write(f"{os.getpid()}\n")


PIDFILE_MODE = 0o644


def _remove_if_ours(pidfile: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        with open(pidfile, encoding="ascii") as handle:
            if int(handle.read().strip()) != os.getpid():
                return
        os.unlink(pidfile)


def _file_reloader(config: Config) -> Callable[[], Config]:
    given = {name: value for name, value in dataclasses.asdict(config).items()}

    def reload() -> Config:
        if not config.config:
            return config
        file_values = load_config_file(config.config)
        file_values.pop(IGNORED_KEY, None)
        explicit = {name: given[name] for name in given if name not in file_values
                    or given[name] != SETTINGS_BY_NAME[name].default}
        return adopt_worker_class(Config.from_mapping({**file_values, **explicit}))[0]

    return reload


def config_from_settings(settings: dict[str, Any]) -> Config:
    """The embedding API's settings: keyword arguments over the file named by ``config``."""
    if isinstance(settings.get("bind"), str):
        settings = {**settings, "bind": (settings["bind"],)}
    file_values: dict[str, Any] = {}
    if settings.get("config"):
        file_values = load_config_file(str(settings["config"]))
        file_values.pop(IGNORED_KEY, None)
    config, _ = adopt_worker_class(Config.from_mapping({**file_values, **settings}))
    return config


def serve(app: AppSource, **settings: Any) -> int:
    """Serve ``app`` (an import string or an app object) in this process until stopped.

    Settings are the names of the settings table (``bind``, ``workers``, ...). Returns the
    arbiter's exit status; raises ``PreforkError`` for bad settings or a failed start.
    """
    return run_arbiter(config_from_settings(settings), app)


class Server:
    """An arbiter in a child process, controlled from this one.

    >>> with Server("myapp:app", bind="127.0.0.1:0", workers=2) as server:
    ...     requests.get(f"http://127.0.0.1:{server.port}/")
    """

    def __init__(self, app: AppSource, **settings: Any) -> None:
        if isinstance(settings.get("bind"), str):
            settings["bind"] = (settings["bind"],)
        self.app = app
        self.config = config_from_settings(settings)
        check_reload(self.config, app)
        self.pid: int | None = None
        self.exit_status: int | None = None
        self.info: dict[str, Any] = {}
        self._channel: Channel | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Server:
        """Fork the arbiter; return once every worker is ready. Raises BootError on failure."""
        if self.pid is not None:
            raise BootError("server already started")
        if isinstance(self.app, str) and not self.config.preload_app:
            check_app_spec(parse_app_spec(self.app), chdir=self.config.chdir)  # before any fork
        ours, theirs = Channel.pair()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                os.setpgid(0, 0)  # signals sent to the test runner's group stay out
                code = self._arbiter_child(theirs)
            finally:
                os._exit(code)
        theirs.close()
        self.pid, self._channel = pid, ours
        reply = self._wait_reply({"ready", "failed"}, timeout)
        if reply is None or reply.name == "failed":
            data = reply.data if reply else {}
            reason = data.get("reason") or "the server failed to start (no answer from the arbiter)"
            self._reap(timeout=5.0)
            error = {"ConfigError": ConfigError, "AppLoadError": AppLoadError}.get(
                data.get("kind", ""), BootError)
            raise error(reason)
        self.info = reply.data
        return self

    def _arbiter_child(self, channel: Channel) -> int:
        try:
            return run_arbiter(self.config, self.app, control=channel)
        except PreforkError as exc:
            with contextlib.suppress(ChannelClosed):
                channel.send(Reply(name="failed",
                                   data={"reason": str(exc), "kind": type(exc).__name__}))
            return 1

    @property
    def port(self) -> int:
        """The first TCP port bound (useful with port 0)."""
        ports = self.info.get("ports") or []
        if not ports:
            raise BootError("the server has no TCP listener")
        return int(ports[0])

    @property
    def ports(self) -> list[int]:
        return [int(port) for port in self.info.get("ports", [])]

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """Workers (pid, slot, state, uptime, requests), target count, breaker state."""
        return self._command("stats", 0, timeout)

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.stats()["workers"]]

    def reload(self) -> None:
        """Replace every worker gracefully (as SIGHUP)."""
        self._command("reload", 0, 5.0)

    def scale(self, workers: int) -> None:
        """Run this many workers (as repeated SIGTTIN/SIGTTOU); PreforkError above
        ``max_workers``."""
        data = self._command("scale", workers, 5.0)
        if "error" in data:
            raise PreforkError(f"scale: {data['error']}")

    def recycle(self, pid: int | str = "all") -> list[int]:
        """Replace one worker (its pid) or ``"all"``, one at a time, each old worker draining
        once its replacement is ready (as ``prefork ctl recycle``); returns the pids queued.
        Raises PreforkError for a pid that is not a live worker."""
        if pid != "all" and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
            raise PreforkError(f"recycle: expected a worker's pid or 'all', got {pid!r}")
        data = self._command("recycle", 0 if pid == "all" else int(pid), 5.0)
        if "error" in data:
            raise PreforkError(f"recycle: {data['error']}")
        return [int(worker) for worker in data["recycling"]]

    def stop(self, graceful: bool = True, timeout: float | None = None) -> int | None:
        """Stop the arbiter and its workers; returns the arbiter's exit status."""
        if self.pid is None or self.exit_status is not None:
            return self.exit_status
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM if graceful else signal.SIGINT)
        limit = timeout if timeout is not None else (
            self.config.shutdown_delay + self.config.graceful_timeout + 10.0)
        return self._reap(limit)

    def _reap(self, timeout: float) -> int | None:
        assert self.pid is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.02)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self.exit_status = os.waitstatus_to_exitcode(status)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        return self.exit_status

    def __enter__(self) -> Server:
        return self.start() if self.pid is None else self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # -- control channel ----------------------------------------------------------------------

    def _command(self, name: str, argument: int, timeout: float) -> dict[str, Any]:
        if self._channel is None:
            raise BootError("the server is not running")
        self._channel.send(Command(name=name, argument=argument))
        reply = self._wait_reply({name}, timeout)
        if reply is None:
            raise BootError(f"the arbiter did not answer {name!r} within {timeout}s")
        return reply.data

    def _wait_reply(self, names: set[str], timeout: float) -> Reply | None:
        assert self._channel is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._channel.sock], [], [], left)
            if not readable:
                continue
            try:
                messages = self._channel.receive()
            except ChannelClosed:
                return None
            for msg, _fds in messages:
                if isinstance(msg, Reply) and msg.name in names | {"failed"}:
                    return msg
        return None

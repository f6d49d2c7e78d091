"""gunicorn-compatible server hooks: called at the same moments, with compatible arguments.

A ``gunicorn.conf.py`` defines hooks as module-level functions (``def post_fork(server,
worker): ...``); they arrive here as settings. The objects passed stand in for gunicorn's
arbiter and worker with the attributes hooks commonly touch: ``pid``, ``cfg`` (the resolved
settings, attribute per setting, read as gunicorn's: ``cfg.bind`` a list of strings,
``cfg.workers`` a number even for ``auto``), ``log`` (a ``logging.Logger``, which has gunicorn's
``info``/``warning``/``error``/``exception`` methods), and for workers ``age`` (a spawn
counter), ``ppid`` and ``alive``; the server also has ``num_workers``, ``WORKERS`` (pid ->
worker), ``proc_name`` (the name in the process titles) and ``LISTENERS`` (one
:class:`ListenerView` per bind address, whose ``str()`` is gunicorn's: ``http://HOST:PORT``,
``https://...`` with TLS, ``unix:PATH``). A hook that raises is logged with its name and
never takes the server down, except ``on_starting`` and ``when_ready``, which abort start-up
as they do in gunicorn. ``nworkers_changed`` is called at start-up too, with ``old_value``
None, as gunicorn calls it when it first sets the worker count.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from prefork.config import Config
from prefork.sockets import ListenerSet

HOOK_NAMES = (
    "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
    "worker_int", "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit",
    "worker_exit", "nworkers_changed", "on_exit", "on_message", "on_broadcast",
)
FATAL_HOOKS = frozenset({"on_starting", "when_ready"})


class HookConfig:
    """``server.cfg`` and ``worker.cfg``: the resolved settings, with the types gunicorn's
    ``cfg`` has where prefork's differ (hooks written for gunicorn append to ``cfg.bind`` or
    compare ``cfg.workers`` with a number)."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)

    @property
    def bind(self) -> list[str]:
        return list(self._config.bind)

    @property
    def workers(self) -> int:
        return self._config.worker_count()


class _ConfigView:
    """``cfg`` as hooks read it: gunicorn's shapes over the Config (assignable, as the
    arbiter swaps in a reloaded one)."""

    _config: Config

    @property
    def cfg(self) -> HookConfig:
        return HookConfig(self._config)

    @cfg.setter
    def cfg(self, config: Config) -> None:
        self._config = config


class WorkerView(_ConfigView):
    """The ``worker`` argument of a hook."""

    def __init__(self, pid: int, ppid: int, age: int, slot: int, cfg: Config,
                 log: logging.Logger) -> None:
        self.pid = pid
        self.ppid = ppid
        self.age = age
        self.slot = slot
        self._config = cfg
        self.log = log
        self.alive = True
        self.booted = False
        # gunicorn's worker.wsgi: the app the worker loaded (ASGI too), None until then
        self.wsgi: Any = None


class ListenerView:
    """One bind address as hooks see it (gunicorn's listener objects): ``str()`` is its URL,
    ``sock`` its socket (the first slot's under reuseport), and socket methods such as
    ``getsockname()`` and ``fileno()`` are that socket's."""

    def __init__(self, listener: ListenerSet, tls: bool = False) -> None:
        self._listener = listener
        self._tls = tls

    @property
    def sock(self) -> socket.socket | None:
        sockets = self._listener.all_sockets()
        return sockets[0] if sockets else None

    def __getattr__(self, name: str) -> Any:
        sock = self.sock
        if sock is None:
            raise AttributeError(name)
        return getattr(sock, name)

    def __str__(self) -> str:
        sock, address = self.sock, self._listener.address
        if address.kind == "unix":
            return f"unix:{address.path}"
        if sock is not None and sock.family == socket.AF_UNIX:  # an inherited fd://N
            return f"unix:{sock.getsockname()}"
        if sock is not None:
            host, port = sock.getsockname()[:2]
        else:  # reuseport, before the first slot's socket
            host, port = address.host, self._listener.port
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def __repr__(self) -> str:
        return f"<listener {self}>"


class ServerView(_ConfigView):
    """The ``server`` argument of a hook: a live view of the arbiter."""

    def __init__(self, pid: int, cfg: Config, log: logging.Logger,
                 workers: Callable[[], dict[int, WorkerView]],
                 num_workers: Callable[[], int],
                 broadcast: Callable[[Any], int] | None = None,
                 proc_name: str = "prefork",
                 listeners: list[ListenerView] | None = None) -> None:
        self.pid = pid
        self._config = cfg
        self.log = log
        self.proc_name = proc_name
        self.LISTENERS: list[ListenerView] = listeners or []
        self._workers = workers
        self._num_workers = num_workers
        self._broadcast = broadcast

    @property
    def WORKERS(self) -> dict[int, WorkerView]:
        return self._workers()

    @property
    def num_workers(self) -> int:
        return self._num_workers()

    def broadcast(self, obj: Any) -> int:
        """Relay ``obj`` to every worker's ``on_broadcast`` (origin: the arbiter's pid); how
        many workers it was queued for. TypeError/ValueError as ``prefork.messages.send``."""
        return self._broadcast(obj) if self._broadcast is not None else 0


def call_hook(config: Config, name: str, *args: Any, log: logging.Logger | None = None) -> None:
    """Run hook ``name`` if the configuration defines one; log (never raise) what it raises,
    except for the start-up hooks gunicorn also aborts on."""
    hook = getattr(config, name, None)
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        if name in FATAL_HOOKS:
            raise
        (log or logging.getLogger("prefork.error")).exception("hook %s raised", name)

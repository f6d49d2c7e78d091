"""gunicorn-compatible server hooks: called at the same moments, with compatible arguments.

A ``gunicorn.conf.py`` defines hooks as module-level functions (``def post_fork(server,
worker): ...``); they arrive here as settings. The objects passed stand in for gunicorn's
arbiter and worker with the attributes hooks commonly touch: ``pid``, ``cfg`` (the resolved
settings, attribute per setting), ``log`` (a ``logging.Logger``, which has gunicorn's
``info``/``warning``/``error``/``exception`` methods), and for workers ``age`` (a spawn
counter), ``ppid`` and ``alive``; the server also has ``num_workers`` and ``WORKERS`` (pid ->
worker). A hook that raises is logged with its name and never takes the server down, except
``on_starting`` and ``when_ready``, which abort start-up as they do in gunicorn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefork.config import Config

HOOK_NAMES = (
    "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init",
    "worker_int", "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit",
    "worker_exit", "nworkers_changed", "on_exit", "on_message", "on_broadcast",
)
FATAL_HOOKS = frozenset({"on_starting", "when_ready"})


class WorkerView:
    """The ``worker`` argument of a hook."""

    def __init__(self, pid: int, ppid: int, age: int, slot: int, cfg: Config,
                 log: logging.Logger) -> None:
        self.pid = pid
        self.ppid = ppid
        self.age = age
        self.slot = slot
        self.cfg = cfg
        self.log = log
        self.alive = True
        self.booted = False
        # gunicorn's worker.wsgi: the app the worker loaded (ASGI too), None until then
        self.wsgi: Any = None


class ServerView:
    """The ``server`` argument of a hook: a live view of the arbiter."""

    def __init__(self, pid: int, cfg: Config, log: logging.Logger,
                 workers: Callable[[], dict[int, WorkerView]],
                 num_workers: Callable[[], int],
                 broadcast: Callable[[Any], int] | None = None) -> None:
        self.pid = pid
        self.cfg = cfg
        self.log = log
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
        many workers it was queued for. TypeError/ValueError as ``prefork.worker.send``."""
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

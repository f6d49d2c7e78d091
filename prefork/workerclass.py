"""gunicorn worker classes named by a dotted path: uvicorn's worker and the app's subclasses.

Under gunicorn, the way to give uvicorn options to an ASGI app is a subclass of
``uvicorn.workers.UvicornWorker`` (or ``uvicorn_worker.UvicornWorker``) whose ``CONFIG_KWARGS``
carries them, passed as ``-k myproject.workers.MyUvicornWorker``. prefork runs its own workers,
so it imports such a class only to read it: the class must descend from one of uvicorn's worker
classes (anything else is refused in one line, as is a path that cannot be imported), and each
``CONFIG_KWARGS`` key that is a prefork setting is applied over the configuration, as uvicorn's
worker applies it over gunicorn's. A key with no prefork equivalent is reported, one line each,
unless it asks for what prefork does anyway (``loop = "uvloop"``).

The class is imported with the app's directories (``chdir``, ``pythonpath``, the current one)
searched first, where gunicorn finds it, and ``sys.path`` is left as it was.

Rule: raises ConfigError naming ``worker_class``; never prints.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefork.config import WORKER_CLASSES, Config
from prefork.errors import ConfigError, PreforkError

UVICORN_WORKER_MODULES = ("uvicorn.workers", "uvicorn_worker")
UVICORN_WORKER_NAMES = ("UvicornWorker", "UvicornH11Worker")
# uvicorn's UvicornH11Worker sets CONFIG_KWARGS = {"loop": "asyncio", "http": "h11"}: named
# without being importable, it still means the h11 parser
H11_WORKER_CLASSES = ("uvicorn.workers.uvicornh11worker", "uvicorn_worker.uvicornh11worker")


def _none_is_zero(value: Any) -> Any:
    """uvicorn's None (no limit, no ping) is prefork's 0."""
    return 0 if value is None else value


def _same(value: Any) -> Any:
    return value


def _interface(value: Any) -> Any:
    return "asgi" if value == "asgi3" else value


def _ws(value: Any) -> Any:
    return "websockets" if value in ("websockets-sansio", "wsproto") else value


# uvicorn.Config's keyword -> (prefork setting, how uvicorn's value becomes prefork's)
KWARG_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "http": ("http", str),
    "lifespan": ("lifespan", str),
    "interface": ("interface", _interface),
    "ws": ("ws", _ws),
    "ws_max_size": ("ws_max_size", _none_is_zero),
    "ws_ping_interval": ("ws_ping_interval", _none_is_zero),
    "ws_ping_timeout": ("ws_ping_timeout", _none_is_zero),
    "ws_per_message_deflate": ("ws_per_message_deflate", bool),
    "proxy_headers": ("proxy_headers", bool),
    "forwarded_allow_ips": ("forwarded_allow_ips", _same),
    "root_path": ("root_path", str),
    "limit_concurrency": ("limit_concurrency", _none_is_zero),
    "limit_max_requests": ("max_requests", _none_is_zero),
    "timeout_keep_alive": ("keepalive", float),
    "timeout_graceful_shutdown": ("graceful_timeout", _none_is_zero),
    "backlog": ("backlog", int),
    "server_header": ("server_header", bool),
    "date_header": ("date_header", bool),
    "factory": ("factory", bool),
}
# keys whose value prefork honours without a setting: silent when they ask for that value
KWARGS_PREFORK_DOES_ANYWAY = {"loop": ("auto", "uvloop"), "app": (None,), "log_config": (None,)}


def adopt_worker_class(config: Config) -> tuple[Config, list[str]]:
    """``config`` with the worker class's ``CONFIG_KWARGS`` applied, and the lines to log
    about keys that have no prefork setting. Raises ConfigError for a class that cannot be
    imported or is not uvicorn's worker."""
    name = config.worker_class
    if name is None:
        return config, []
    if name in H11_WORKER_CLASSES:
        return (config.replace(http="h11") if config.http == "auto" else config), []
    if name in WORKER_CLASSES:  # a name prefork knows: nothing to import
        return config, []
    worker_class = _import_worker_class(name, config)
    if not any(_is_uvicorn_worker(base) for base in worker_class.__mro__):
        raise ConfigError(
            f"worker_class: {name} is not a subclass of uvicorn's UvicornWorker; prefork runs "
            "its own workers (sync, gthread, asgi, or uvicorn's worker class or a subclass)")
    kwargs = getattr(worker_class, "CONFIG_KWARGS", None) or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"worker_class: {name}.CONFIG_KWARGS is not a dict")
    changes: dict[str, Any] = {}
    notices: list[str] = []
    for key, value in kwargs.items():
        if key in KWARG_SETTINGS:
            setting, convert = KWARG_SETTINGS[key]
            changes[setting] = convert(value)
        elif value not in KWARGS_PREFORK_DOES_ANYWAY.get(key, ()):
            notices.append(f"worker_class: {name}.CONFIG_KWARGS[{key!r}] = {value!r} ignored: "
                           "prefork has no such setting")
    if not changes:
        return config, notices
    try:
        return config.replace(**changes), notices
    except PreforkError as exc:
        raise ConfigError(f"worker_class: {name}.CONFIG_KWARGS: {exc}") from None


def _is_uvicorn_worker(cls: type) -> bool:
    module = cls.__module__
    from_uvicorn = module in UVICORN_WORKER_MODULES or module.startswith("uvicorn_worker.")
    return from_uvicorn and cls.__name__ in UVICORN_WORKER_NAMES


def _import_worker_class(path: str, config: Config) -> type:
    module_name, _, attribute = path.rpartition(".")
    try:
        with _app_directories_first(config):
            module = importlib.import_module(module_name)
    except Exception as exc:
        detail = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise ConfigError(f"worker_class: cannot import {path}: {detail}") from None
    worker_class = getattr(module, attribute, None)
    if not isinstance(worker_class, type):
        raise ConfigError(f"worker_class: module {module_name!r} has no class {attribute!r}")
    return worker_class


@contextmanager
def _app_directories_first(config: Config) -> Iterator[None]:
    base = os.path.abspath(config.chdir or os.curdir)
    extra = [os.path.join(base, part.strip())
             for part in (config.pythonpath or "").split(",") if part.strip()]
    saved = list(sys.path)
    sys.path[:0] = [*extra, base]
    try:
        yield
    finally:
        sys.path[:] = saved

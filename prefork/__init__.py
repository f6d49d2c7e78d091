"""prefork: a pre-forking HTTP server for ASGI and WSGI apps.

Public API: :func:`serve` blocks like the command line; :class:`Server` runs an arbiter in a
child process and controls it (start, stats, reload, scale, stop); :class:`Config` is the
resolved settings table.

``Config``, ``Server`` and ``serve`` are imported on first use: every ``prefork.*`` import runs
this module first, and the processes that never touch them (a worker importing
``prefork.messages`` for app code, ``prefork ctl``) should not pay for the settings table and
the arbiter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefork.errors import (
    AppLoadError,
    BootError,
    ClientDisconnected,
    ConfigError,
    PreforkError,
)
from prefork.version import __version__, build

if TYPE_CHECKING:
    from prefork.config import Config
    from prefork.server import Server, serve


__all__ = [
    "AppLoadError",
    "BootError",
    "ClientDisconnected",
    "Config",
    "ConfigError",
    "PreforkError",
    "Server",
    "__version__",
    "build",
    "serve",
]


_LAZY = {"Config": "prefork.config", "Server": "prefork.server", "serve": "prefork.server"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

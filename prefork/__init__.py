"""prefork: a pre-forking HTTP server for ASGI and WSGI apps.

Public API: :func:`serve` blocks like the command line; :class:`Server` runs an arbiter in a
child process and controls it (start, stats, reload, scale, stop); :class:`Config` is the
resolved settings table.

``Config``, ``Server`` and ``serve`` are imported on first use: every ``prefork.*`` import runs
this module first, and the processes that never touch them (a worker importing
``prefork.worker`` for app code, ``prefork ctl``) should not pay for the settings table and
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

if TYPE_CHECKING:
    from prefork.config import Config
    from prefork.server import Server, serve

__version__ = "0.1.0"

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


def build() -> str:
    """Which build of the request path is installed: "compiled" when its modules are C
    extensions (``PREFORK_COMPILE=1``, see ``setup.py``), else "pure Python". Read off the files
    beside the engine's module, which the import system prefers in that order, without
    importing it."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from pathlib import Path

    engine = Path(__file__).parent / "http" / "connection"
    compiled = any(engine.with_name("connection" + suffix).exists()
                   for suffix in EXTENSION_SUFFIXES)
    return "compiled" if compiled else "pure Python"


_LAZY = {"Config": "prefork.config", "Server": "prefork.server", "serve": "prefork.server"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

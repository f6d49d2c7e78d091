"""prefork: a pre-forking HTTP server for ASGI and WSGI apps.

Public API: :func:`serve` blocks like the command line; :class:`Server` runs an arbiter in a
child process and controls it (start, stats, reload, scale, stop); :class:`Config` is the
resolved settings table.
"""

__version__ = "0.1.0"

from prefork.config import Config
from prefork.errors import (
    AppLoadError,
    BootError,
    ClientDisconnected,
    ConfigError,
    PreforkError,
)
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
    "serve",
]

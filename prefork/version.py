"""The installed version and build of prefork, in a module of their own so that the parts of
the server that print them (the start-up line, ``prefork --version``, WSGI's ``SERVER_SOFTWARE``)
read them without importing the package face."""

from __future__ import annotations

__version__ = "0.1.0"


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

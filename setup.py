"""The build's one optional step: with ``PREFORK_COMPILE=1`` the request path is compiled.

Everything else about the package lives in ``pyproject.toml``. The modules below are the ones
every request runs through (parsing, the engine, the ASGI and WSGI cycles, the protocol); mypyc
turns them into C extensions from the same typed source, and the interpreter runs the rest.
Measured in-process under cachegrind (``bench/http_engine.py``'s protocol rows, wrk's request):
an ASGI hello request costs 55k instructions compiled against 93k interpreted, a WSGI one 46k
against 91k. Without the variable the package is pure Python and behaves the same (``make test``
runs the in-process tests on it, then the whole suite compiled); ``prefork --version`` says
which one is installed.

Left out on purpose: ``prefork.asgi.ready`` (its ``Ready`` subclasses the C ``Future``, which
a compiled class cannot) and everything that runs once per process rather than per request.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

COMPILED = [
    "prefork/memo.py",
    "prefork/http/events.py",
    "prefork/http/limits.py",
    "prefork/http/framing.py",
    "prefork/http/headers.py",
    "prefork/http/response_head.py",
    "prefork/http/parsers/httptools.py",
    "prefork/http/targets.py",
    "prefork/http/connection.py",
    "prefork/asgi/scope.py",
    "prefork/asgi/cycle.py",
    "prefork/wsgi/environ.py",
    "prefork/wsgi/input.py",
    "prefork/wsgi/responder.py",
    "prefork/wsgi/cycle.py",
    "prefork/workers/contract.py",
    "prefork/workers/response.py",
    "prefork/workers/health.py",
    "prefork/workers/eager.py",
    "prefork/workers/protocol.py",
]


def compiled_modules() -> list[Extension]:
    if os.environ.get("PREFORK_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # only needed for this build: see pyproject's build needs

    # The shared library goes inside the package (prefork/_native__mypyc*.so): at the top level
    # an editable install would not find it, since only the package is mapped to the tree.
    return mypycify(COMPILED, opt_level="3", group_name="prefork._native")


setup(ext_modules=compiled_modules())

"""The build's one choice: the request path compiled with mypyc, or pure Python.

Everything else about the package lives in ``pyproject.toml``. The modules below are the ones
every request runs through (parsing, the engine, the ASGI and WSGI cycles, the protocol); mypyc
turns them into C extensions from the same typed source, and the interpreter runs the rest.
Measured in-process under cachegrind (``bench/http_engine.py``'s protocol rows, wrk's request):
an ASGI hello request costs 55k instructions compiled against 93k interpreted, a WSGI one 46k
against 91k.

A wheel (``pip install .``, ``pip wheel .``, an sdist, a git URL) is compiled wherever a C
compiler and the Python headers exist; mypy (which brings mypyc) and the runtime dependencies
whose types it reads are build requirements in ``pyproject.toml``, so pip's isolated build
environment has them. Where the compile cannot happen (no compiler, no headers, or the compile
itself fails) the build says why in one line (pip shows it with ``-v``) and the package is pure
Python: it behaves the same, slower. ``PREFORK_PURE=1`` asks for the pure build;
``PREFORK_COMPILE=1`` for the compiled one or a failed build (``make compile`` sets it, so that a
failure shows). An editable install is pure: a compiled module would keep serving the code it
was built from while its source is edited (``make compile`` compiles a checkout in place and
rebuilds when a source changes). ``prefork --version`` says which build is installed.

Left out on purpose: ``prefork.asgi.ready`` (its ``Ready`` subclasses the C ``Future``, which
a compiled class cannot) and everything that runs once per process rather than per request.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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
    "prefork/http2/huffman.py",
    "prefork/http2/hpack.py",
    "prefork/http2/requests.py",
    "prefork/http2/responder.py",
    "prefork/http2/frames.py",
    "prefork/http2/events.py",
    "prefork/http2/errors.py",
    "prefork/http2/engine.py",
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
    "prefork/workers/serving.py",
    "prefork/workers/proxy_reader.py",
    "prefork/workers/file_sending.py",
    "prefork/workers/protocol.py",
    "prefork/workers/h2_stream.py",
    "prefork/workers/h2_session.py",
    "prefork/workers/h2_preface.py",
]

# The commands that build modules; metadata (egg_info, dist_info) and sdist do not, so they
# neither compile nor print the build's line.
BUILDING = {"build", "build_ext", "bdist_wheel", "bdist", "install", "editable_wheel", "develop"}
EDITABLE = {"editable_wheel", "develop"}


REQUIRED = os.environ.get("PREFORK_COMPILE") == "1"


def say(line: str) -> None:
    print(f"prefork: {line}", file=sys.stderr, flush=True)


def fall_back(reason: str) -> None:
    if REQUIRED:
        raise SystemExit(f"prefork: PREFORK_COMPILE=1 but {reason}")
    say(f"building the pure-Python request path (slower): {reason}")


def compile_blocker() -> str | None:
    """Why C extensions cannot be built here, or None when they can: one compile of a file
    that includes Python.h, with the compiler and flags this Python was built with."""
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        return f"no Python headers in {include} (Debian: python3-dev)"
    # CC from the environment wins, as it does for setuptools' own compile
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch, "probe.c")
        probe.write_text("#include <Python.h>\nint prefork_probe(void) { return 0; }\n")
        try:
            result = subprocess.run(
                [*compiler, "-I", include, "-c", str(probe), "-o", str(probe.with_suffix(".o"))],
                capture_output=True, text=True, check=False)
        except OSError:
            return f"no C compiler ({compiler[0]} not found; Debian: gcc)"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the C compiler cannot build against Python.h ({last})"
    return None


def compiled_modules() -> list[Extension]:
    commands = set(sys.argv[1:])
    if not commands & BUILDING:
        return []
    if os.environ.get("PREFORK_PURE") == "1":
        say("PREFORK_PURE=1: building the pure-Python request path")
        return []
    if commands & EDITABLE and not REQUIRED:
        say("an editable install is pure Python (make compile compiles a checkout in place)")
        return []
    blocker = compile_blocker()
    if blocker is not None:
        fall_back(blocker)
        return []
    try:
        from mypyc.build import mypycify  # a build requirement: see pyproject.toml
    except ImportError:
        fall_back("mypy (which brings mypyc) is not installed")
        return []
    try:
        # The shared library goes inside the package (prefork/_native__mypyc*.so): at the top
        # level an editable install would not find it, since only the package is mapped.
        return mypycify(COMPILED, opt_level="3", group_name="prefork._native")
    except (Exception, SystemExit) as error:  # mypyc exits on a type error it cannot compile
        fall_back(f"mypyc failed ({error!r})")
        return []


class BuildExtOrPure(build_ext):
    """Compiles the request path; if the C compile fails, removes whatever it built so the
    package stays whole and pure, and says so, instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            if REQUIRED:
                raise
            for extension in self.extensions:
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            self.extensions = []
            self.distribution.ext_modules = []
            fall_back(f"the C compile failed ({error})")

    def get_outputs(self) -> list[str]:
        return super().get_outputs() if self.extensions else []


setup(ext_modules=compiled_modules(), cmdclass={"build_ext": BuildExtOrPure})

"""Parser backends: they turn bytes into calls on a :class:`Sink`, and do nothing else.

A backend checks the *lexical* rules of HTTP/1.1 (which bytes may appear where) and reports a
request head, body pieces and the end of each message. What the head *means* (framing, limits,
keep-alive, upgrade) is decided once, by the sink, which is the connection. Both backends must
produce the same calls for the same bytes; the unit tests feed both the same inputs.

Known lexical differences, each allowed by RFC 9112 and none a framing question:
llhttp accepts only the request methods it knows (any token passes h11) and accepts a run of
spaces between request-line parts (h11 does not). Where llhttp is stricter inside a chunked body
(whitespace after a chunk size or in a chunk extension, a bare LF or a control character in the
trailer section), the h11 backend refuses the same bytes; ``tests/corpus`` holds those cases.
This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from prefork.errors import ConfigError
from prefork.http.limits import Limits
from prefork.http.parsers.contract import Sink, Tokenizer

__all__ = ["PARSERS", "Sink", "Tokenizer", "load_backend"]

PARSERS = ("httptools", "h11")


def load_backend(name: str) -> Callable[[Sink, Limits], Tokenizer]:
    """The backend's tokenizer class, imported on the first call (h11 or httptools may be
    missing; the arbiter calls it before forking, so that every worker shares the parser's
    pages instead of importing its own). ``prefork.http.connection`` keeps what it returns and
    makes each connection's tokenizer by calling it."""
    backend = _BACKENDS.get(name)
    if backend is None:
        backend = _BACKENDS[name] = _import_backend(name)
    return backend


def _import_backend(name: str) -> Callable[[Sink, Limits], Tokenizer]:
    if name == "httptools":
        from prefork.http.parsers.httptools import HttptoolsTokenizer

        return HttptoolsTokenizer
    if name == "h11":
        from prefork.http.parsers.h11 import H11Tokenizer

        return H11Tokenizer
    raise ConfigError(f"parser must be one of {', '.join(PARSERS)}, got {name!r}")


_BACKENDS: dict[str, Callable[[Sink, Limits], Tokenizer]] = {}


def choose_parser(setting: str) -> str:
    """The backend for the ``http`` setting (auto, httptools or h11). ``auto`` prefers
    httptools and falls back to h11 when it cannot be imported; a backend named explicitly
    that cannot be imported is a ConfigError naming the setting, raised before any fork."""
    import importlib.util

    wanted = ("httptools", "h11") if setting == "auto" else (setting,)
    for name in wanted:
        if importlib.util.find_spec(name) is not None:
            return name
    raise ConfigError(f"http: the {' or '.join(wanted)} parser is not installed "
                      f"(pip install {wanted[0]}{', or choose --http h11' * (setting != 'h11')})")

"""The WSGI environ of one request (PEP 3333), built from a parsed request head; and
``wsgi.errors``, the stream that writes into the error log.

Pure: no I/O but the logging call of :class:`ErrorStream`. The constant keys are built once per
worker (:func:`base_environ`) and copied per request, so a request costs one dict copy plus
its own keys.

Rules kept, as gunicorn users expect them:

* ``PATH_INFO`` is the target's path percent-decoded to bytes, then decoded as latin-1 (PEP 3333
  "native strings"); ``SCRIPT_NAME`` is ``--root-path``, stripped from the front of
  ``PATH_INFO`` when the path starts with it at a segment boundary. ``RAW_URI`` is the request
  target exactly as received (gunicorn's key).
* ``SERVER_NAME``/``SERVER_PORT`` come from ``Host``, else from the listening socket.
  ``SERVER_SOFTWARE`` is ``prefork/<version>``. ``REMOTE_ADDR`` is the connection's peer even
  behind a trusted proxy (gunicorn's meaning; the app reads ``HTTP_X_FORWARDED_FOR``), while
  ``wsgi.url_scheme`` follows the proxy's ``X-Forwarded-Proto`` (the worker decides both).
* Every header becomes ``HTTP_<NAME>`` (``-`` as ``_``), repeated fields joined with ``,``,
  except ``Content-Type``/``Content-Length`` (``CONTENT_TYPE``/``CONTENT_LENGTH``). A field whose
  name holds ``_`` is dropped: ``X_Forwarded_For`` and ``X-Forwarded-For`` would both map to
  ``HTTP_X_FORWARDED_FOR``, and a client must not be able to spoof what a proxy set (nginx and
  Apache drop them too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from prefork.http.events import Request
from prefork.http.targets import split_target
from prefork.memo import remember
from prefork.version import __version__

__all__ = ["ErrorStream", "base_environ", "build_environ", "split_target"]

_PROTOCOLS: Final = {b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0", b"2": "HTTP/2"}
SERVER_SOFTWARE: Final = f"prefork/{__version__}"  # gunicorn's "gunicorn/<version>"
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


class ErrorStream:
    """``wsgi.errors``: a text stream whose lines become ERROR records of the error log.

    Partial writes are kept until a newline or ``flush()`` (``print(..., file=errors)`` writes
    the text and the newline separately). One per worker; the lock keeps lines whole when the
    app runs in threads.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._pending = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        with self._lock:
            data = self._pending + text
            *lines, self._pending = data.split("\n")
        for line in lines:
            self._logger.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            rest, self._pending = self._pending, ""
        if rest:
            self._logger.error("%s", rest)


def base_environ(*, root_path: str, errors: Any, multithread: bool, multiprocess: bool,
                 file_wrapper: Any) -> dict[str, Any]:
    """The keys that are the same for every request a worker serves, and the keys every
    request sets (placeholders here): a copy of a dict that already holds them is made at its
    final size, where adding them one by one grew the copy twice (-2.7k instructions per
    request under cachegrind, ``bench/http_engine.py``)."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "",
        "QUERY_STRING": "",
        "RAW_URI": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SERVER_NAME": "",
        "SERVER_PORT": "",
        "REMOTE_ADDR": "",
        "REMOTE_PORT": "",
        "wsgi.input": None,
        "SCRIPT_NAME": root_path,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": file_wrapper,
        "wsgi.input_terminated": True,
    }


def build_environ(
    base: dict[str, Any],
    request: Request,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    wsgi_input: Any,
) -> dict[str, Any]:
    """The environ of ``request``; ``base`` comes from :func:`base_environ` (it is copied)."""
    environ = base.copy()
    target = request.target
    raw_target = target.decode("latin-1")
    if target[:1] == b"/":  # origin-form, the usual one: RAW_URI's text serves the path too
        if "?" in raw_target:
            path, _, query = raw_target.partition("?")
        else:  # no query: no method call
            path, query = raw_target, ""
        if "%" in path:
            path = unquote_to_bytes(path.encode("latin-1")).decode("latin-1")
    else:
        raw_path, raw_query = split_target(target)
        path = unquote_to_bytes(raw_path).decode("latin-1") if b"%" in raw_path \
            else raw_path.decode("latin-1")
        query = raw_query.decode("latin-1")
    script_name: str = base["SCRIPT_NAME"]
    if script_name and path.startswith(script_name) and (
            len(path) == len(script_name) or path[len(script_name)] == "/"):
        path = path[len(script_name):]
    method = request.method
    environ["REQUEST_METHOD"] = _METHODS.get(method) or method.decode("latin-1")
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = raw_target
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version, "HTTP/1.1")
    environ["wsgi.url_scheme"] = scheme
    environ["wsgi.input"] = wsgi_input
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    else:  # a unix socket has no peer address
        del environ["REMOTE_PORT"]
    # A plain loop: a dict comprehension and one update cost more (13.3k against 16.6k
    # instructions for a one-field head, 23.4k against 27.2k for six, under cachegrind).
    keys = _KEYS
    for name, value in request.headers:
        key = keys.get(name) or _environ_key(name)
        if not key:
            continue
        if key in environ and key[0] == "H":  # a repeated field: RFC 9110 §5.3
            environ[key] += "," + value.decode("latin-1")
        else:
            environ[key] = value.decode("latin-1")
    # The engine lets one Host field through at most (RFC 9112 §3.2).
    host: str | None = environ.get("HTTP_HOST")
    if host:
        name_and_port = _HOSTS.get((host, scheme))
        if name_and_port is None:
            name_and_port = remember(_HOSTS, (host, scheme),
                                     _split_host(host, _DEFAULT_PORTS.get(scheme, "80")),
                                     _KEYS_MAX)
        environ["SERVER_NAME"], environ["SERVER_PORT"] = name_and_port
    elif server is not None:
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1]) if server[1] is not None else ""
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = "localhost", ""
    return environ


_METHODS: Final = {m.encode(): m
                    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}

# Field name -> environ key, "" for a dropped name. A plain dict read inline is a third of the
# cost of an lru_cache call; bounded, and pure (a name's key never changes).
_KEYS: Final[dict[bytes, str]] = {}
_KEYS_MAX: Final = 512
# (Host value, scheme) -> (SERVER_NAME, SERVER_PORT): a server sees few distinct hosts, and
# the lookup costs a third of splitting again (timeit). Pure and bounded like _KEYS.
_HOSTS: Final[dict[tuple[str, str], tuple[str, str]]] = {}


def _environ_key(name: bytes) -> str:
    """``content-type`` -> ``CONTENT_TYPE``, ``x-a`` -> ``HTTP_X_A``; "" for names with ``_``
    (names arrive lower-cased from the engine)."""
    if name == b"content-type":
        key = "CONTENT_TYPE"
    elif name == b"content-length":
        key = "CONTENT_LENGTH"
    elif b"_" in name:
        key = ""
    else:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    if len(_KEYS) < _KEYS_MAX:
        _KEYS[name] = key
    return key


def _split_host(host: str, default_port: str) -> tuple[str, str]:
    """``example.com:8080`` -> (``example.com``, ``8080``); ``[::1]`` keeps its brackets."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            rest = host[end + 1:]
            return host[:end + 1], rest[1:] if rest.startswith(":") and rest[1:] else default_port
        return host, default_port
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, port
    return host, default_port

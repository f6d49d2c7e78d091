"""The arbiter's control socket for ``prefork ctl``: status, reload, scale, recycle, stop.

Wire format, one request per connection, each way one line of JSON::

    client  -> arbiter   {"command": "scale", "change": 2}\\n
    arbiter -> client    {"target": 4, "previous": 2}\\n        or  {"error": "..."}\\n
    the arbiter closes the connection once the reply is sent

Commands and their arguments: ``status``; ``reload``; ``scale`` with ``workers`` (a count) or
``change`` (+N/-N); ``recycle`` with ``pid`` (a worker's pid, or "all"); ``stop`` with
``graceful`` (default true).

It is served from the arbiter's selector loop and must never stall supervision: every socket is
non-blocking, a request is at most ``MAX_REQUEST`` bytes, nested at most ``MAX_DEPTH`` deep (json
recurses once per level: 2,000 ``[`` raised RecursionError in the arbiter), with numbers of at
most ``MAX_DIGITS`` digits, and ``scale`` stops at ``max_workers``; a client has ``CLIENT_DEADLINE``
seconds from connect until its reply is written, and at most ``MAX_CLIENTS`` are served at once
(the arbiter closes any more at once): the bounded loop of :mod:`prefork.arbiter.clients`. A
client that connects and sends nothing costs one fd until its deadline and nothing else.

Who may connect is decided by the file: mode ``--control-socket-mode`` (0600), owned by the
server's user. Anyone who can connect can stop the server, so the default path is in a
directory only this user can write: ``$XDG_RUNTIME_DIR`` (systemd makes it 0700 per user), else
``/tmp/prefork-UID`` created 0700 and refused if someone else owns it or it is writable by
others (a directory planted in /tmp by another user could hold a symlink). Changing commands are
logged with the peer's pid and uid (``SO_PEERCRED``).

A live socket at the path is another arbiter's: an explicit ``--control-socket`` then fails to
start, the default path only logs a warning (many servers on one host must still start). The
exception is a USR2 binary upgrade: the socket belongs to our parent, the old arbiter, and the
new arbiter takes the path over; the old one then leaves it alone on exit, since the path no
longer names its socket (checked by inode), and binds it again if the new arbiter dies first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import stat
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from prefork.arbiter.clients import CLIENT_DEADLINE, MAX_CLIENTS, ClientLoop
from prefork.config import Config
from prefork.errors import BootError, ConfigError
from prefork.system.process import server_identity

__all__ = ["CLIENT_DEADLINE", "MAX_CLIENTS", "MAX_REQUEST", "ControlServer", "Operations",
           "default_socket_path", "ensure_private_directory", "open_control_socket",
           "private_tmp_directory"]

MAX_REQUEST = 4096  # bytes; the longest real request is under 60
MAX_DEPTH = 4  # nested arrays and objects; a real request is one flat object
MAX_DIGITS = 12  # in any number; counts and pids are far shorter
SOCKET_NAME = "prefork.ctl"
PRIVATE_DIR_MODE = 0o700


class Operations(Protocol):
    """What the control socket needs of the arbiter."""

    target: int
    stopping: str | None
    replacements_pending: list[int]

    def stats(self) -> dict[str, Any]: ...

    def reload(self) -> list[int]: ...

    def scale(self, count: int) -> None:
        """Raises ValueError for a count above ``max_workers``."""

    def recycle(self, pid: int | None = None) -> list[int]: ...

    def begin_stop(self, graceful: bool) -> None: ...


# -- where the socket lives -----------------------------------------------------------------------


def default_socket_path(environ: Mapping[str, str], uid: int, tmp: str = "/tmp") -> str:
    """``$XDG_RUNTIME_DIR/prefork.ctl`` when that names a writable directory, else
    ``/tmp/prefork-UID/prefork.ctl``. Computes only; the server checks the directory."""
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        return os.path.join(runtime, SOCKET_NAME)
    return os.path.join(private_tmp_directory(uid, tmp), SOCKET_NAME)


def private_tmp_directory(uid: int, tmp: str = "/tmp") -> str:
    """The directory of the default path when there is no ``$XDG_RUNTIME_DIR``."""
    return os.path.join(tmp, f"prefork-{uid}")


def ensure_private_directory(directory: str) -> None:
    """Create ``directory`` 0700, or check that an existing one is safe to put our socket in:
    a real directory (not a symlink), ours, not writable by group or others."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, PRIVATE_DIR_MODE)
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise BootError(f"control_socket: cannot use {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise BootError(f"control_socket: {directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise BootError(f"control_socket: {directory} belongs to uid {info.st_uid}, not us")
    if info.st_mode & 0o022:
        raise BootError(f"control_socket: {directory} is writable by others "
                        f"(mode {oct(stat.S_IMODE(info.st_mode))})")


def open_control_socket(config: Config, log: logging.Logger,
                        environ: Mapping[str, str] | None = None) -> ControlServer | None:
    """Bind the control socket (before privileges are dropped); None when it is disabled.

    An explicit ``control_socket`` that cannot be used raises BootError naming the setting; a
    problem with the default path is logged as a warning and the server runs without one.
    """
    if config.control_socket_disable:
        return None
    environ = os.environ if environ is None else environ
    path = config.control_socket or default_socket_path(environ, os.getuid())
    try:
        if os.path.dirname(path) == private_tmp_directory(os.getuid()):
            ensure_private_directory(os.path.dirname(path))
        sock = listen(path, config.control_socket_mode, _owner(config), log)
    except BootError as exc:
        if config.control_socket is not None:
            raise
        log.warning("%s; running without a control socket (give each server its own "
                    "--control-socket)", exc)
        return None
    return ControlServer(sock, path, config.control_socket_mode, log)


def listen(path: str, mode: int, owner: tuple[int, int] | None,
           log: logging.Logger) -> socket.socket:
    """A listening Unix socket at ``path`` with ``mode`` and ``owner``; raises BootError."""
    _clear_path(path, log)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # chmod and chown before listen(): until then a connect is refused, so no client gets
        # in while the file still has the umask's mode
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, *owner)
        sock.listen(MAX_CLIENTS)
    except OSError as exc:
        sock.close()
        raise BootError(f"control_socket: cannot listen on {path}: "
                        f"{exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _clear_path(path: str, log: logging.Logger) -> None:
    """Remove a stale socket at ``path``; a live one is another arbiter's (BootError), unless
    it is our parent's: then this is the new arbiter of a binary upgrade and takes over."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BootError(f"control_socket: cannot use {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise BootError(f"control_socket: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
        owner: int | None = _peer_credentials(probe)[0]
    except OSError:
        owner = None  # refused: nobody listens, the socket file was left by a dead server
    finally:
        probe.close()
    if owner is not None and owner != os.getppid():
        raise BootError(f"control_socket: {path} is in use by arbiter {owner}")
    if owner is not None:
        log.info("control socket: taking %s over from arbiter %d (binary upgrade)", path, owner)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the peer: struct ucred, three ints."""
    size = struct.calcsize("3i")
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         size))
    return pid, uid, gid


def _owner(config: Config) -> tuple[int, int] | None:
    """The uid and gid the socket file gets: the server's ``user``/``group`` when we start as
    root (the arbiter then drops to them). Unknown names are left to ``drop_privileges``,
    which fails with the setting's name right after."""
    if os.geteuid() != 0 or not (config.user or config.group):
        return None
    try:
        return server_identity(config)
    except ConfigError:
        return None


# -- serving it -----------------------------------------------------------------------------------


class _Request:
    """One client's request line, read up to ``MAX_REQUEST`` bytes."""

    __slots__ = ("inbox", "peer", "server")

    def __init__(self, server: ControlServer, peer: tuple[int, int, int]) -> None:
        self.server = server
        self.peer = peer
        self.inbox = bytearray()

    def received(self, data: bytes) -> bytes | None:
        self.inbox += data
        line, newline, _ = bytes(self.inbox).partition(b"\n")
        if len(line) > MAX_REQUEST:
            return _encode({"error": f"request longer than {MAX_REQUEST} bytes"})
        if newline or (not data and line):
            return _encode(self.server._execute(line, self.peer))
        return None


def _encode(reply: dict[str, Any]) -> bytes:
    return (json.dumps(reply, separators=(",", ":")) + "\n").encode()


class ControlServer:
    """The listening control socket and its clients, served from the arbiter's selector."""

    def __init__(self, sock: socket.socket, path: str, mode: int,
                 log: logging.Logger) -> None:
        self.sock = sock
        self.path = path
        self.mode = mode
        self.log = log
        self._identity = _identity(path)
        self._clients: ClientLoop | None = None
        self._operations: Operations | None = None
        self._closed = False

    def attach(self, selector: selectors.BaseSelector, operations: Operations,
               clock: Callable[[], float] = time.monotonic) -> None:
        """Serve on ``selector``: its callbacks are called with the selector key."""
        self._operations = operations
        self._clients = ClientLoop(self.sock, "control socket", self._open_request, self.log,
                                   close_oldest=False, clock=clock)
        self._clients.start(selector)
        self.log.info("control socket at %s", self.path)

    def expire(self, now: float) -> None:
        """Drop clients past their deadline (called from the arbiter's loop)."""
        if self._clients is not None:
            self._clients.expire(now)

    def reclaim(self) -> None:
        """After a failed binary upgrade: bind the path again if it is no longer ours."""
        if self._closed or self._clients is None or _identity(self.path) == self._identity:
            return
        try:
            sock = listen(self.path, self.mode, None, self.log)
        except BootError as exc:
            self.log.warning("%s; prefork ctl cannot reach this arbiter", exc)
            return
        self._clients.replace_listener(sock)
        self.sock, self._identity = sock, _identity(self.path)

    def close(self) -> None:
        """At the arbiter's exit: close everything and remove the path if it is still ours."""
        if self._closed:
            return
        self._closed = True
        if self._clients is not None:
            self._clients.close()
        else:
            self.sock.close()
        if _identity(self.path) == self._identity:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def abandon(self) -> None:
        """In a freshly forked worker: close the inherited fds, leave the path alone."""
        self._closed = True
        if self._clients is not None:
            self._clients.abandon()
        else:
            self.sock.close()

    def _open_request(self, sock: socket.socket) -> _Request:
        return _Request(self, _peer_credentials(sock))  # OSError: the loop refuses the client

    # -- commands -----------------------------------------------------------------------------

    def _execute(self, line: bytes, peer: tuple[int, int, int]) -> dict[str, Any]:
        assert self._operations is not None
        if _nesting_depth(line) > MAX_DEPTH:
            return {"error": f"the request is nested deeper than {MAX_DEPTH} levels"}
        try:
            request = json.loads(line, parse_int=_bounded_int, parse_float=_bounded_float,
                                 parse_constant=_no_constant)
        except RequestError as exc:
            return {"error": str(exc)}
        except (ValueError, UnicodeDecodeError):
            return {"error": "the request is not a JSON object"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"error": 'the request needs a "command" (status, reload, scale, recycle, '
                             'stop)'}
        name = request["command"]
        handler = COMMANDS.get(name)
        if handler is None:
            return {"error": f"unknown command {name!r} (status, reload, scale, recycle, stop)"}
        if name != "status":
            self.log.info("control: %s requested by pid %d (uid %d)", name, peer[0], peer[1])
        try:
            return handler(self._operations, request)
        except RequestError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # a control request must never take the arbiter down
            self.log.exception("control: %s failed", name)
            return {"error": f"{name} failed: {type(exc).__name__}: {exc}"}


class RequestError(Exception):
    """A control request with a bad argument; its message is the reply's ``error``."""


def _nesting_depth(line: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise RequestError(f"a number longer than {MAX_DIGITS} digits")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_DIGITS + 8:  # sign, point and exponent on top of the digits
        raise RequestError(f"a number longer than {MAX_DIGITS} digits")
    return float(text)


def _no_constant(text: str) -> Any:
    raise RequestError(f"{text} is not a number here")


def _status(operations: Operations, _request: dict[str, Any]) -> dict[str, Any]:
    """The arbiter's stats, with each worker's slot history next to it."""
    stats = operations.stats()
    slots = stats.get("slots", {})
    workers = []
    for worker in stats.get("workers", []):
        history = slots.get(worker["slot"], {})
        workers.append({**worker, "restarts": history.get("restarts", worker["restarts"]),
                        "last_exit": history.get("last_exit", "")})
    return {**stats, "workers": workers, "stopping": operations.stopping,
            "recycling": list(operations.replacements_pending)}


def _reload(operations: Operations, _request: dict[str, Any]) -> dict[str, Any]:
    return {"replacing": operations.reload()}


def _scale(operations: Operations, request: dict[str, Any]) -> dict[str, Any]:
    previous = operations.target
    if "workers" in request:
        count = _integer(request["workers"], "workers")
    elif "change" in request:
        count = previous + _integer(request["change"], "change")
    else:
        raise RequestError('scale needs "workers" (a count) or "change" (+N or -N)')
    if count < 1:
        raise RequestError(f"cannot scale to {count} workers (1 at least)")
    try:
        operations.scale(count)
    except ValueError as exc:  # above max_workers
        raise RequestError(str(exc)) from None
    return {"target": operations.target, "previous": previous}


def _recycle(operations: Operations, request: dict[str, Any]) -> dict[str, Any]:
    target = request.get("pid", "all")
    pid = None if target == "all" else _integer(target, "pid")
    try:
        return {"recycling": operations.recycle(pid)}
    except LookupError as exc:
        raise RequestError(str(exc.args[0]) if exc.args else "no such worker") from None


def _stop(operations: Operations, request: dict[str, Any]) -> dict[str, Any]:
    graceful = request.get("graceful", True)
    if not isinstance(graceful, bool):
        raise RequestError('"graceful" must be true or false')
    operations.begin_stop(graceful=graceful)
    return {"stopping": operations.stopping}


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f'"{name}" must be an integer, got {value!r}')
    return value


COMMANDS: dict[str, Callable[[Operations, dict[str, Any]], dict[str, Any]]] = {
    "status": _status, "reload": _reload, "scale": _scale, "recycle": _recycle, "stop": _stop,
}


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino

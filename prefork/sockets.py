"""Listening sockets: parsing bind addresses, binding them once in the arbiter, per-slot sets.

The arbiter binds everything before the first fork and keeps every listener open for its whole
life, so a worker that is replaced inherits the same kernel queue and no queued connection is
lost. In ``reuseport`` mode each worker slot owns one ``SO_REUSEPORT`` listener per TCP address;
Unix sockets and inherited fds cannot be split that way and are shared by all slots.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, NamedTuple

from prefork.config import Config
from prefork.errors import BootError, ConfigError

# accept() errors that mean this process is out of descriptors or memory, not that a client
# misbehaved: the arbiter and the workers both keep serving and log them once a second.
RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

if TYPE_CHECKING:
    import ssl


class BindAddress(NamedTuple):
    """One parsed ``--bind`` value."""

    kind: str  # "tcp", "unix" or "fd"
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_bind(text: str) -> BindAddress:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT``, ``HOST``, any of those after ``tcp://``,
    ``unix:PATH``, ``unix://PATH`` or ``fd://N`` (gunicorn's forms)."""
    value = text.strip()
    if value.startswith("tcp://"):
        value = value[len("tcp://"):]
        if not value:
            raise ConfigError(f"bind: {text!r} names no address")
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ConfigError(f"bind: {text!r} names no socket path")
        return BindAddress("unix", path=path)
    if value.startswith("fd://"):
        try:
            fd = int(value[len("fd://"):])
        except ValueError:
            raise ConfigError(f"bind: {text!r} is not fd://N with N a number") from None
        return BindAddress("fd", fd=fd)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ConfigError(f"bind: {text!r} is not [IPV6]:PORT")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif ":" in value:
        raise ConfigError(f"bind: IPv6 address {text!r} needs brackets: [{value}]:PORT")
    else:
        host, port_text = value, ""
    if not port_text:
        port = 8000
    else:
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"bind: port {port_text!r} in {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"bind: port {port} in {text!r} is out of range 0-65535")
    return BindAddress("tcp", host=host or "0.0.0.0", port=port)


def _tcp_socket(address: BindAddress, backlog: int, reuse_port: bool) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BootError(f"bind: cannot resolve {address}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BootError(f"bind: cannot listen on {address}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _ensure_port_free(address: BindAddress) -> None:
    """Two servers whose SO_REUSEPORT listeners share a port would silently split its traffic
    (the kernel allows it for the same user). A plain bind first, without SO_REUSEPORT, fails
    if anything at all holds the port, which turns that mistake into a start-up error."""
    if address.port == 0:
        return
    _tcp_socket(address, backlog=1, reuse_port=False).close()


UNIX_SOCKET_MODE = 0o660


def _unix_socket(address: BindAddress, backlog: int) -> socket.socket:
    """Bind and listen on a Unix socket path, replacing a stale socket left by a dead server.

    The socket file gets mode 0o660 (owner and group may connect, others may not) whatever the
    process umask is; prefork's umask defaults to 0, which would otherwise leave it 0o777. The
    chmod happens after bind and before listen, so no connection is accepted while the file
    still has the umask's mode. gunicorn leaves the mode to the umask; prefork is stricter by
    default, and a wider mode is a ``chmod`` away for a deployment that wants one."""
    path = address.path
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale socket left by a dead server
            else:
                raise BootError(f"bind: {address} is in use by another server")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, UNIX_SOCKET_MODE)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BootError(f"bind: cannot listen on {address}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _inherited_socket(address: BindAddress) -> socket.socket:
    try:
        sock = socket.socket(fileno=address.fd)
    except OSError as exc:
        raise BootError(f"bind: {address} is not an open socket: {exc.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        raise BootError(f"bind: {address} is not a stream socket")
    sock.set_inheritable(True)
    return sock


class ListenerSet:
    """All listeners of one bind address: one shared socket, or one per worker slot."""

    def __init__(self, address: BindAddress, backlog: int, per_slot: bool,
                 inherited: dict[int, int] | None = None) -> None:
        """``inherited`` maps slots to open listening fds handed over by the arbiter this one
        replaces (USR2); slot -1 is the shared listener."""
        self.address = address
        self.backlog = backlog
        self.per_slot = per_slot and address.kind == "tcp"
        self._shared: socket.socket | None = None
        self._slots: dict[int, socket.socket] = {}
        self._port = address.port
        self.handed_over = False  # a new arbiter owns the sockets now: leave the unix path
        for slot, fd in (inherited or {}).items():
            sock = socket.socket(fileno=fd)
            sock.set_inheritable(True)
            if slot == SHARED_SLOT or not self.per_slot:
                self._shared = sock
            else:
                self._slots[slot] = sock
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self._port = sock.getsockname()[1]
        if self.per_slot and self._shared is not None:
            self.per_slot = False  # the previous arbiter shared this address: keep doing so
        if not self.per_slot and self._shared is None:
            self._shared = self._open(reuse_port=False)

    def _open(self, reuse_port: bool) -> socket.socket:
        if self.address.kind == "unix":
            return _unix_socket(self.address, self.backlog)
        if self.address.kind == "fd":
            return _inherited_socket(self.address)
        bound = BindAddress("tcp", host=self.address.host, port=self._port)
        if reuse_port and not self._slots:
            _ensure_port_free(bound)
        sock = _tcp_socket(bound, self.backlog, reuse_port)
        # Port 0: every later slot joins the port the first bind was given.
        self._port = sock.getsockname()[1]
        return sock

    @property
    def port(self) -> int:
        return self._port

    def ensure_slot(self, slot: int) -> None:
        """Open the listener of ``slot`` if it has none (reuseport mode)."""
        if self.per_slot and slot not in self._slots:
            self._slots[slot] = self._open(reuse_port=True)

    def release_slot(self, slot: int) -> None:
        """Close the listener of a slot that no longer exists (scale down)."""
        sock = self._slots.pop(slot, None)
        if sock is not None:
            sock.close()

    def for_slot(self, slot: int) -> socket.socket:
        if self._shared is not None:
            return self._shared
        self.ensure_slot(slot)
        return self._slots[slot]

    def slot_sockets(self) -> dict[int, socket.socket]:
        """The per-slot listeners by slot (empty when the address is shared)."""
        return dict(self._slots)

    def all_sockets(self) -> list[socket.socket]:
        return [self._shared] if self._shared is not None else list(self._slots.values())

    def handover_fds(self) -> dict[int, int]:
        """Slot -> fd of every listener, for the arbiter that replaces this one (USR2)."""
        if self._shared is not None:
            return {SHARED_SLOT: self._shared.fileno()}
        return {slot: sock.fileno() for slot, sock in self._slots.items()}

    def close(self) -> None:
        for sock in self.all_sockets():
            with contextlib.suppress(OSError):
                sock.close()
        self._slots.clear()
        if self.address.kind == "unix" and not self.handed_over:
            with contextlib.suppress(OSError):
                os.unlink(self.address.path)


def open_listeners(binds: tuple[str, ...], backlog: int, dispatch: str,
                   environ: MutableMapping[str, str] | None = None) -> list[ListenerSet]:
    """Bind every address before any fork; raises BootError naming the failing address.

    Listeners handed over by a previous arbiter (``PREFORK_INHERITED_FDS``, USR2) are adopted
    instead of bound; so are systemd's (``LISTEN_FDS``/``LISTEN_PID``), which then replace
    ``binds``. Both variables are removed from ``environ`` so no child sees them."""
    if environ is None:
        environ = os.environ
    handed = _take_inherited(environ)
    systemd = _take_systemd_fds(environ)
    if systemd:
        binds = tuple(f"fd://{fd}" for fd in systemd)
    addresses = [parse_bind(text) for text in binds]
    sets: list[ListenerSet] = []
    try:
        for address in addresses:
            listener = ListenerSet(address, backlog, per_slot=dispatch == "reuseport",
                                   inherited=handed.pop(str(address), None))
            if listener.per_slot:
                listener.ensure_slot(0)
            sets.append(listener)
    except BaseException:
        for listener in sets:
            listener.close()
        raise
    for leftovers in handed.values():  # addresses the new configuration no longer binds
        for fd in leftovers.values():
            with contextlib.suppress(OSError):
                os.close(fd)
    return sets


SHARED_SLOT = -1
INHERITED_FDS_VARIABLE = "PREFORK_INHERITED_FDS"


def handover_environment(listeners: list[ListenerSet], pid: int) -> str:
    """The value of PREFORK_INHERITED_FDS for the arbiter that will run as ``pid``."""
    table = {str(ls.address): {str(slot): fd for slot, fd in ls.handover_fds().items()}
             for ls in listeners}
    return json.dumps({"pid": pid, "listeners": table})


def _take_inherited(environ: MutableMapping[str, str]) -> dict[str, dict[int, int]]:
    text = environ.pop(INHERITED_FDS_VARIABLE, "")
    if not text:
        return {}
    try:
        data = json.loads(text)
        if data.get("pid") != os.getpid():
            return {}
        return {address: {int(slot): int(fd) for slot, fd in fds.items()}
                for address, fds in data["listeners"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BootError(f"{INHERITED_FDS_VARIABLE} is malformed: {text[:80]!r}") from None


def _take_systemd_fds(environ: MutableMapping[str, str]) -> list[int]:
    """sd_listen_fds(3): fds 3..3+N-1 when LISTEN_PID names this process."""
    count, pid = environ.pop("LISTEN_FDS", ""), environ.pop("LISTEN_PID", "")
    environ.pop("LISTEN_FDNAMES", None)
    if not count or pid != str(os.getpid()):
        return []
    try:
        return list(range(3, 3 + int(count)))
    except ValueError:
        raise BootError(f"LISTEN_FDS is not a number: {count!r}") from None



def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, or None without ``certfile``. Modern defaults: TLS 1.2 or
    newer, ALPN ``http/1.1``, and ``h2`` first with ``--http2`` (a client that offers both gets
    HTTP/2, one that offers only HTTP/1.1 gets that); failures to load name the setting (at
    start-up, not at the first handshake)."""
    if not config.certfile:
        return None
    import ssl  # 4 MB of the arbiter's memory: imported for TLS only (workers get it anyway)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"certfile: cannot load {config.certfile}"
                          f"{' / ' + config.keyfile if config.keyfile else ''}: {exc}") from None
    if config.ca_certs:
        try:
            context.load_verify_locations(config.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ca_certs: cannot load {config.ca_certs}: {exc}") from None
    context.verify_mode = (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED)[config.cert_reqs]
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(f"ciphers: {exc}") from None
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return context

"""The contract between a connection and what serves its requests.

``Connection`` is what a request cycle may use of the connection it answers on
(``prefork.workers.protocol.HttpProtocol`` is the one implementation); ``Cycle`` is what the
connection calls on a cycle (the ASGI ``HttpCycle``, the WSGI ``WsgiCycle``, the health answer);
``Serving`` makes the cycles, chosen once per worker and given to the connection, so the
connection knows no app interface and the interfaces know no connection but this one. A
connection taken over after an upgrade (a WebSocket session) or before its first request (the
PROXY header reader) is a ``Session``.

``Connection`` and ``Cycle`` are mypyc traits, not ``typing.Protocol``s: both sides are compiled
(setup.py), and a call through a trait is a native call, where a structural protocol would make
every one of the dozen calls a request makes between them a Python attribute look-up. Without
mypyc ``trait`` is a plain base class.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Coroutine
from typing import IO, Any, Final, Protocol, TypeVar

from prefork.http.connection import ServerConnection
from prefork.http.events import Request

_T = TypeVar("_T")

try:
    from mypy_extensions import trait
except ImportError:  # installed without mypy: nothing is compiled, a trait is a base class
    def trait(cls: _T) -> _T:
        return cls

# Where a cycle's response stands.
RESPONSE_NOT_STARTED: Final = 0
RESPONSE_STARTED: Final = 1
RESPONSE_COMPLETE: Final = 2


@trait
class Connection:
    """What a request cycle may use of the connection it answers on."""

    conn: ServerConnection  # the engine: a cycle turns its response into bytes through it
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    # The connection's TLS facts in the shape of the ASGI ``tls`` extension (server_cert,
    # client_cert_chain, client_cert_name, client_cert_error, tls_version, cipher_suite),
    # made once per connection (``prefork.workers.tls_facts``); None in cleartext.
    tls: dict[str, Any] | None
    closed: bool
    write_paused: bool  # the transport's buffer is above its high-water mark: see drain
    reading_paused: bool

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Write ``data`` (small writes are held for the loop's pass; order is kept)."""
        ...

    @abstractmethod
    def write_apart(self, head: bytes, body: bytes) -> None:
        """Write a head and a large body without joining them."""
        ...

    @abstractmethod
    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        ...

    @abstractmethod
    async def send_file(self, file: IO[bytes], count: int, offset: int = 0) -> int:
        """Write ``count`` bytes of ``file`` from ``offset``; how many went out."""
        ...

    @abstractmethod
    def send_continue(self) -> None:
        """Send ``100 Continue`` if the client waits for it."""
        ...

    @abstractmethod
    def send_informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Send an informational (1xx) response, such as ``103 Early Hints``, ahead of the
        final response's head. Raises ``LocalProtocolError`` when the connection cannot
        (the client speaks HTTP/1.0, the final head is out, a field is malformed)."""
        ...

    @abstractmethod
    def body_consumed(self, size: int) -> None:
        """The app took ``size`` bytes of body: reading may resume."""
        ...

    @abstractmethod
    def pause_reading(self) -> None:
        ...

    @abstractmethod
    def resume_reading(self) -> None:
        ...

    @abstractmethod
    def response_complete(self) -> None:
        """The response's last byte was handed to :meth:`write` (or :meth:`write_apart`)."""
        ...

    @abstractmethod
    def cycle_finished(self, cycle: Cycle) -> None:
        """The app's call returned (or raised) and the cycle answered for it."""
        ...

    @abstractmethod
    def session_finished(self) -> None:
        """A :class:`Session`'s app returned: it counts as one request served."""
        ...

    @abstractmethod
    def close(self) -> None:
        ...

    @abstractmethod
    def abort(self) -> None:
        ...


@trait
class Cycle:
    """What the connection calls on the cycle of one request."""

    response_state: int  # RESPONSE_NOT_STARTED, RESPONSE_STARTED or RESPONSE_COMPLETE
    task: asyncio.Task[None] | None

    @property
    @abstractmethod
    def body_size(self) -> int:
        """Received body bytes the app has not taken yet."""
        ...

    @abstractmethod
    def body_received(self, data: bytes) -> None:
        ...

    @abstractmethod
    def request_complete(self) -> None:
        ...

    @abstractmethod
    def client_finished_sending(self) -> None:
        """EOF after a complete request: maybe a half-close, the response still goes out."""
        ...

    @abstractmethod
    def client_gone(self) -> None:
        ...

    @abstractmethod
    def begin(self, app: Any) -> Coroutine[Any, Any, None] | None:
        """Start the cycle: the coroutine to run as its task, or None when it already ran to
        its end (and called ``cycle_finished``) without one."""
        ...


class Session(Protocol):
    """What takes a connection's bytes instead of the engine."""

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def shutdown(self) -> None:
        """The worker drains."""

    def writing_resumed(self) -> None: ...


class Upgraded(Session, Protocol):
    """A session that runs the app (a WebSocket)."""

    async def run(self, app: Any) -> None: ...


@trait
class Serving:
    """What serves one worker's requests: its app interface, chosen once per worker."""

    upgrades: frozenset[bytes]  # what the engine may switch to (prefork.http.connection)
    # Whether a trusted proxy's fields replace the client and the Host as well as the scheme
    # (ASGI, as uvicorn's --proxy-headers), or the scheme alone (WSGI, as gunicorn).
    forwarded_client: bool

    @abstractmethod
    def cycle(self, connection: Connection, request: Request) -> Cycle:
        ...

    @abstractmethod
    def upgrade(self, connection: Connection, request: Request) -> Upgraded:
        """A session for an upgrade request the engine accepted (only those in ``upgrades``)."""
        ...

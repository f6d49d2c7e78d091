"""The HTTP/2 engines a worker can serve with (``--http2-engine``) and what the session asks of
one (:class:`Engine`).

``native`` (``prefork.http2.engine``) is prefork's own frame layer, flow control and HPACK,
compiled with the request path; ``h2`` (``prefork.http2.h2_engine``) is python-hyper's ``h2``
behind the same interface, the reference the native engine is tested against. Each is imported
only by a worker that serves HTTP/2 with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from prefork.http2.events import Event
from prefork.http2.limits import Http2Limits

ENGINES: Final = ("native", "h2")


class Engine(Protocol):
    """One HTTP/2 connection's protocol state, sans I/O (the methods of
    ``prefork.http2.engine.ServerConnection``, which documents them)."""

    silent_resets: int

    @property
    def max_outbound_frame_size(self) -> int: ...

    def initiate_connection(self) -> None: ...

    def initiate_upgrade_connection(self, settings_header: bytes) -> None: ...

    def receive_data(self, data: bytes) -> list[Event]: ...

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                     end_stream: bool = False) -> None: ...

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None: ...

    def end_stream(self, stream_id: int) -> None: ...

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None: ...

    def acknowledge_received_data(self, size: int, stream_id: int) -> None: ...

    def local_flow_control_window(self, stream_id: int) -> int: ...

    def increment_flow_control_window(self, increment: int, stream_id: int = 0) -> None: ...

    def announce_goaway(self, last_stream_id: int) -> None: ...

    def close_connection(self, error_code: int = 0, last_stream_id: int | None = None,
                         additional_data: bytes = b"") -> None: ...

    def data_to_send(self) -> bytes: ...


def engine_factory(name: str) -> Callable[[Http2Limits], Engine]:
    """What makes a connection's engine for ``--http2-engine name``."""
    if name == "native":
        from prefork.http2.engine import ServerConnection

        return ServerConnection
    if name == "h2":
        from prefork.http2.h2_engine import H2Engine

        return H2Engine
    raise ValueError(f"no HTTP/2 engine {name!r}")

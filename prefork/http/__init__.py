"""The HTTP/1.1 engine: bytes in, events out; events in, bytes out. It does no I/O.

See ``connection`` for the contract of :class:`ServerConnection` and ``events`` for the vocabulary.
"""

from prefork.http.connection import (
    CLOSED,
    DONE,
    ERROR,
    IDLE,
    MUST_CLOSE,
    SEND_BODY,
    ServerConnection,
)
from prefork.http.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
    Sentinel,
)
from prefork.http.headers import DateCache
from prefork.http.limits import Limits

__all__ = [
    "CLOSED",
    "DONE",
    "ERROR",
    "IDLE",
    "MUST_CLOSE",
    "NEED_DATA",
    "PAUSED",
    "SEND_BODY",
    "ConnectionClosed",
    "Data",
    "DateCache",
    "EndOfMessage",
    "InformationalResponse",
    "Limits",
    "Request",
    "Response",
    "Sentinel",
    "ServerConnection",
]

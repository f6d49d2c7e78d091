"""What an HTTP/2 connection engine reports of the bytes it was given (``receive_data``).

Both engines (``prefork.http2.engine``, prefork's own, and ``prefork.http2.h2_engine`` over
python-hyper ``h2``) report these, so that the session (``prefork.workers.h2_session``)
is written once. Names and values are bytes, as the client sent them.
"""

from __future__ import annotations


class Event:
    """One thing the client's frames said."""


class RequestReceived(Event):
    """A new stream's request head; ``stream_ended``: it carried END_STREAM (no body)."""

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                 stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = stream_ended


class DataReceived(Event):
    """Body bytes of a stream; ``flow_controlled_length`` counts the padding too."""

    def __init__(self, stream_id: int, data: bytes, flow_controlled_length: int,
                 stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length
        self.stream_ended = stream_ended


class TrailersReceived(Event):
    """A stream's trailer fields (they end the stream)."""

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream_id = stream_id
        self.headers = headers


class StreamEnded(Event):
    """The client sent all of a stream: reported after the event whose frame ended it."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(Event):
    """The client reset a stream that was open."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


class WindowUpdated(Event):
    """The client opened its window by ``delta`` (``stream_id`` 0: the connection's)."""

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged(Event):
    """The client's SETTINGS, acknowledged already: setting id → new value."""

    def __init__(self, changed: dict[int, int]) -> None:
        self.changed = changed


class PingReceived(Event):
    """A PING, answered already."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class PingAckReceived(Event):
    """The answer to a PING (the server sends none, so a client's is unasked for)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class PriorityUpdated(Event):
    """A PRIORITY frame or field: prefork does not schedule by it."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class UnknownFrameReceived(Event):
    """A frame of a type HTTP/2 does not define: ignored (RFC 9113 §4.1)."""

    def __init__(self, frame_type: int) -> None:
        self.frame_type = frame_type


class ConnectionTerminated(Event):
    """The client's GOAWAY: no new streams from it; those open are still answered (RFC 9113
    §6.8)."""

    def __init__(self, error_code: int, last_stream_id: int, additional_data: bytes) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data

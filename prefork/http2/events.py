"""What ``prefork.http2.engine.ServerConnection.receive_data`` reports: one small native class
per kind of news from the client, its fields set positionally. Field names and values are the
bytes the client sent; ``stream_ended`` is a plain flag, and the end of a stream is also
reported on its own as :class:`StreamEnded` right after the event that carried it.
"""

from __future__ import annotations


class Event:
    """Any of the events below."""


class RequestReceived(Event):
    """A stream opened with its request head."""

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                 stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = stream_ended


class DataReceived(Event):
    """Body bytes; ``flow_controlled_length`` (the bytes plus padding) is what the stream's and
    the connection's windows lost, to be given back with ``acknowledge_received_data``."""

    def __init__(self, stream_id: int, data: bytes, flow_controlled_length: int,
                 stream_ended: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length
        self.stream_ended = stream_ended


class TrailersReceived(Event):
    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream_id = stream_id
        self.headers = headers


class StreamEnded(Event):
    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(Event):
    """An open stream is gone: the client reset it, or its frames broke the protocol and the
    engine reset it (``error_code`` then says why)."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


class WindowUpdated(Event):
    """The client opened a send window; ``stream_id`` 0 is the connection's."""

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged(Event):
    def __init__(self, changed: dict[int, int]) -> None:
        self.changed = changed


class PingReceived(Event):
    def __init__(self, data: bytes) -> None:
        self.data = data


class PingAckReceived(Event):
    def __init__(self, data: bytes) -> None:
        self.data = data


class PriorityUpdated(Event):
    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class UnknownFrameReceived(Event):
    def __init__(self, frame_type: int) -> None:
        self.frame_type = frame_type


class ConnectionTerminated(Event):
    """The client's GOAWAY: it opens no more streams; those open are still served."""

    def __init__(self, error_code: int, last_stream_id: int, additional_data: bytes) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data

"""What an HTTP/2 connection engine raises (both engines: see ``prefork.http2.events``)."""

from __future__ import annotations

# RFC 9113 §7 error codes that prefork sends or reads by name
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD


class ProtocolError(Exception):
    """A connection error: the GOAWAY naming ``error_code`` is queued already and the engine
    takes nothing more; the caller writes what is queued and closes."""

    def __init__(self, message: str, error_code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = error_code


class DenialOfServiceError(ProtocolError):
    """The client asked for more than the limits allow (GOAWAY ENHANCE_YOUR_CALM)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ENHANCE_YOUR_CALM)


class FlowControlError(ProtocolError):
    """More was to be sent than the client's window holds."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FLOW_CONTROL_ERROR)


class StreamClosedError(Exception):
    """A frame to send on a stream that is not open for it."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(f"stream {stream_id} is closed")
        self.stream_id = stream_id

"""What ``prefork.http2.engine.ServerConnection`` raises.

A :class:`ProtocolError` is a connection error (RFC 9113 §5.4.1): by the time it is raised the
GOAWAY that names its code is queued and the connection takes nothing more, so the caller writes
``data_to_send()`` and closes. :class:`StreamClosedError` and :class:`FlowControlError` are the
caller's mistakes on the sending side (a stream that is no longer open for it, bytes past the
window); they queue nothing and leave the connection as it was.
"""

from __future__ import annotations

from prefork.http2.frames import ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR


class ProtocolError(Exception):
    """The client broke the protocol: GOAWAY(``error_code``) is queued, the connection is over."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class DenialOfServiceError(ProtocolError):
    """The client asked for more than the connection's bounds allow (ENHANCE_YOUR_CALM)."""

    def __init__(self, message: str) -> None:
        super().__init__(ENHANCE_YOUR_CALM, message)


class FlowControlError(ProtocolError):
    """``send_data`` past the send windows: nothing was queued, the connection goes on."""

    def __init__(self, message: str) -> None:
        super().__init__(FLOW_CONTROL_ERROR, message)


class StreamClosedError(Exception):
    """A send or a reset on a stream that is not open for it."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(f"stream {stream_id} is not open")
        self.stream_id = stream_id

"""The ``h2`` engine (``--http2-engine h2``): python-hyper's ``h2`` behind the interface of
prefork's own engine (``prefork.http2.engine``), reporting ``prefork.http2.events`` and raising
``prefork.http2.errors`` (:class:`H2Engine`).

:func:`new_connection` announces the settings (``prefork.http2.limits.Http2Limits``) in the
first SETTINGS frame, gives it HPACK coders that skip repeated header blocks
(``prefork.http2.hpack_memo``) and has ``h2`` enforce them itself where it can: the frame size, the
decoded header list size (an HPACK bomb ends the connection with ENHANCE_YOUR_CALM; a header
block split over more than 64 CONTINUATION frames is refused before it is decoded). A header
block is also refused as it arrives once its encoded bytes pass twice the header list size
(:class:`BoundedFrameBuffer`): ``h2`` alone would buffer 64 frames of the largest frame size
first, a gigabyte with ``--http2-max-frame-size`` at its maximum. The concurrent streams are
the session's to refuse: ``h2`` ends the whole connection with PROTOCOL_ERROR for a stream past
the limit, where RFC 9113 §5.1.2 makes it an error of that stream alone, and closes its state at
a client's GOAWAY, when the streams open still wait for their answers
(:class:`ServerH2Connection`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from h2 import events as h2_events
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import DenialOfServiceError
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.exceptions import StreamClosedError as H2StreamClosedError
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, GoAwayFrame, HeadersFrame

from prefork.http2 import events
from prefork.http2.errors import ProtocolError, StreamClosedError
from prefork.http2.hpack_memo import MemoDecoder, MemoEncoder
from prefork.http2.limits import Http2Limits


class BoundedFrameBuffer(FrameBuffer):
    """``h2``'s frame reader, refusing a header block whose encoded bytes pass ``limit`` while
    its CONTINUATION frames still arrive (an encoded block is no larger than the list it
    decodes to, give or take Huffman coding, hence the slack the caller gives ``limit``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(server=True)
        self.limit = limit
        self.block_size = 0

    def _update_header_buffer(self, f: Any) -> Any:
        if isinstance(f, HeadersFrame | ContinuationFrame):
            size = len(f.data)
            if self._headers_buffer:  # a CONTINUATION of the block under way
                size += self.block_size
            self.block_size = size
            if size > self.limit:
                raise DenialOfServiceError("header block too large")
        return super()._update_header_buffer(f)


class ServerH2Connection(H2Connection):
    """``h2``'s connection without its own concurrent-stream check, which ends the connection;
    the session refuses a stream past the limit with REFUSED_STREAM instead.

    Its closed streams are forgotten (walking every stream it has) only once it holds
    ``STREAMS_KEPT`` of them, not at each new stream. It remembers how its last 4096 streams
    closed, not ``h2``'s 65536: about 120 bytes each,
    8 MB for a long-lived connection otherwise. A frame for a stream closed longer ago than that
    ends the connection (PROTOCOL_ERROR), as for a stream never opened."""

    MAX_CLOSED_STREAMS = 4096
    # Streams kept before h2's closed ones are forgotten: h2 walks all of them to do it, at each
    # new stream; past this many it is done as often as h2 does it, below it not at all.
    STREAMS_KEPT = 32
    # RST_STREAM frames that reset no open stream (h2 reports no event for them), so that the
    # session can count them with the other frames that ask for nothing; it zeroes this
    silent_resets = 0

    def _receive_rst_stream_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        try:
            frames, events = super()._receive_rst_stream_frame(frame)
        except Exception:
            self.silent_resets += 1
            raise
        if not any(isinstance(event, h2_events.StreamReset) for event in events):
            self.silent_resets += 1
        return frames, events

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        """A client's GOAWAY, without closing ``h2``'s state: ``h2`` would refuse every frame
        after it, so the streams the client still waits for could not be answered (RFC 9113
        §6.8: a GOAWAY stops new streams, not those open)."""
        event = h2_events.ConnectionTerminated()
        event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    @property
    def open_inbound_streams(self) -> int:
        # h2 also forgets its closed streams in this property: that still happens, once the
        # streams kept are more than a few
        if len(self.streams) >= self.STREAMS_KEPT:
            super().open_inbound_streams  # noqa: B018
        return 0


def new_connection(limits: Http2Limits) -> ServerH2Connection:
    """The server side of one connection, its SETTINGS not sent yet (see
    :func:`start_connection`)."""
    # the fields are checked as the request is built (prefork.http2.requests), in one pass
    config = H2Configuration(client_side=False, header_encoding=None,
                             validate_inbound_headers=False, normalize_inbound_headers=False,
                             validate_outbound_headers=False, normalize_outbound_headers=False)
    connection = ServerH2Connection(config=config)
    connection.encoder = MemoEncoder()
    connection.decoder = MemoDecoder()
    connection.incoming_buffer = BoundedFrameBuffer(2 * limits.max_header_list_size)
    connection.local_settings = type(connection.local_settings)(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
            SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            SettingCodes.ENABLE_PUSH: 0,
        },
    )
    # The decoder's limit applies at once, not only once the client acknowledged it.
    connection.decoder.max_header_list_size = limits.max_header_list_size
    connection.max_inbound_frame_size = limits.max_frame_size
    return connection


def start_connection(connection: H2Connection, limits: Http2Limits) -> None:
    """Queue the server's preface (SETTINGS) and the connection window's increase."""
    connection.initiate_connection()
    increase = limits.connection_window - 65535
    if increase > 0:
        connection.increment_flow_control_window(increase)


def _translated(event: Any) -> events.Event | None:
    """``h2``'s event as ``prefork.http2.events`` says it (None: one the session never asks
    for, such as an acknowledgement of its own SETTINGS)."""
    if isinstance(event, h2_events.DataReceived):
        return events.DataReceived(event.stream_id, event.data, event.flow_controlled_length,
                                   event.stream_ended is not None)
    if isinstance(event, h2_events.RequestReceived):
        return events.RequestReceived(event.stream_id, event.headers,
                                      event.stream_ended is not None)
    if isinstance(event, h2_events.StreamEnded):
        return events.StreamEnded(event.stream_id)
    if isinstance(event, h2_events.WindowUpdated):
        return events.WindowUpdated(event.stream_id, event.delta)
    if isinstance(event, h2_events.RemoteSettingsChanged):
        return events.RemoteSettingsChanged(
            {int(code): change.new_value for code, change in event.changed_settings.items()})
    if isinstance(event, h2_events.StreamReset):
        return events.StreamReset(event.stream_id, int(event.error_code or 0))
    if isinstance(event, h2_events.ConnectionTerminated):
        return events.ConnectionTerminated(int(event.error_code or 0), event.last_stream_id or 0,
                                           event.additional_data or b"")
    if isinstance(event, h2_events.TrailersReceived):
        return events.TrailersReceived(event.stream_id, event.headers)
    if isinstance(event, h2_events.PingReceived):
        return events.PingReceived(event.ping_data)
    if isinstance(event, h2_events.PingAckReceived):
        return events.PingAckReceived(event.ping_data)
    if isinstance(event, h2_events.PriorityUpdated):
        return events.PriorityUpdated(event.stream_id or 0)
    if isinstance(event, h2_events.UnknownFrameReceived):
        return events.UnknownFrameReceived(event.frame.type or 0)
    return None


class H2Engine:
    """:class:`ServerH2Connection` behind the engine interface (``prefork.http2.engine``'s
    ``ServerConnection``): its events translated, its exceptions re-raised as
    ``prefork.http2.errors``'."""

    def __init__(self, limits: Http2Limits) -> None:
        self.limits = limits
        self.connection = new_connection(limits)
        self.outbound = b""  # the drain's GOAWAY, framed here: h2 would end its state with it

    @property
    def max_outbound_frame_size(self) -> int:
        return int(self.connection.max_outbound_frame_size)

    @property
    def silent_resets(self) -> int:
        return self.connection.silent_resets

    @silent_resets.setter
    def silent_resets(self, count: int) -> None:
        self.connection.silent_resets = count

    def initiate_connection(self) -> None:
        start_connection(self.connection, self.limits)

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        try:
            self.connection.initiate_upgrade_connection(settings_header)
        except Exception as exc:  # a malformed HTTP2-Settings
            raise ProtocolError(f"bad HTTP2-Settings: {exc!r}") from None
        increase = self.limits.connection_window - 65535
        if increase > 0:
            self.connection.increment_flow_control_window(increase)

    def receive_data(self, data: bytes) -> list[events.Event]:
        try:
            received = self.connection.receive_data(data)
        except H2ProtocolError as exc:  # h2 queued the GOAWAY that says why
            raise ProtocolError(str(exc), _error_code(exc)) from None
        translated = []
        for event in received:
            ours = _translated(event)
            if ours is not None:
                translated.append(ours)
        return translated

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                     end_stream: bool = False) -> None:
        with _translated_errors(stream_id):
            self.connection.send_headers(stream_id, headers, end_stream=end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        with _translated_errors(stream_id):
            self.connection.send_data(stream_id, data, end_stream=end_stream)

    def end_stream(self, stream_id: int) -> None:
        with _translated_errors(stream_id):
            self.connection.end_stream(stream_id)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        with _translated_errors(stream_id):
            self.connection.reset_stream(stream_id, error_code)

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        # ValueError: more than the stream had, nothing to give back
        with _translated_errors(stream_id), contextlib.suppress(ValueError):
            self.connection.acknowledge_received_data(size, stream_id)

    def local_flow_control_window(self, stream_id: int) -> int:
        try:
            return int(self.connection.local_flow_control_window(stream_id))
        except H2StreamClosedError:
            raise StreamClosedError(stream_id) from None
        except H2ProtocolError as exc:
            raise ProtocolError(str(exc), _error_code(exc)) from None

    def increment_flow_control_window(self, increment: int, stream_id: int = 0) -> None:
        with _translated_errors(stream_id):
            self.connection.increment_flow_control_window(increment, stream_id or None)

    def announce_goaway(self, last_stream_id: int) -> None:
        frame = GoAwayFrame(stream_id=0, last_stream_id=last_stream_id,
                            error_code=ErrorCodes.NO_ERROR)
        self.outbound += self.connection.data_to_send() + frame.serialize()

    def close_connection(self, error_code: int = 0, last_stream_id: int | None = None,
                         additional_data: bytes = b"") -> None:
        with _translated_errors(0):
            self.connection.close_connection(error_code=error_code,
                                             additional_data=additional_data or None,
                                             last_stream_id=last_stream_id)

    def data_to_send(self) -> bytes:
        data = self.connection.data_to_send()
        if self.outbound:
            data = self.outbound + data
            self.outbound = b""
        return bytes(data)


def _error_code(exc: H2ProtocolError) -> int:
    code = getattr(exc, "error_code", None)
    return int(code) if code is not None else int(ErrorCodes.PROTOCOL_ERROR)


@contextlib.contextmanager
def _translated_errors(stream_id: int) -> Iterator[None]:
    """``h2``'s exceptions from a call the session makes, as ``prefork.http2.errors``'."""
    try:
        yield
    except H2StreamClosedError:
        raise StreamClosedError(stream_id) from None
    except H2ProtocolError as exc:
        raise ProtocolError(str(exc), _error_code(exc)) from None

"""The server side of an HTTP/2 connection (RFC 9113), sans-I/O: bytes in, events out
(:meth:`ServerConnection.receive_data`), calls in, bytes out (``send_*``, :meth:`data_to_send`).

Built for the request path and compiled with mypyc: a stream is a :class:`Stream` of plain int
and bool fields (which way it is still open, its windows), not a state machine; frames are read
at offsets of one buffer and written straight into one ``bytearray``
(``prefork.http2.frames``); header blocks go through ``prefork.http2.hpack``.

What the caller (``prefork.workers.h2_session``) relies on beyond the RFC's letter:

* A client's GOAWAY closes nothing: the streams it opened are still answered (§6.8).
* No concurrent-stream check: the caller refuses a stream past its limit with REFUSED_STREAM,
  an error of that stream alone (§5.1.2).
* A header block is refused while it arrives, once its encoded bytes pass twice the header
  list limit or it spans more than ``MAX_CONTINUATIONS`` frames, and a decoded list past the
  limit stops decoding: GOAWAY ENHANCE_YOUR_CALM (:class:`DenialOfServiceError`).
* Closed streams cost no memory: a stream id at or below the highest the client opened that is
  not open is closed (§5.1.1). Frames that ask for nothing and name no open stream (RST_STREAM,
  WINDOW_UPDATE, DATA, a SETTINGS ACK never asked for) give no event and are counted in
  ``silent_resets`` instead, so that the caller can bound them as it bounds the others.
* An error of one stream (§5.4.2) resets it and, if the caller knew it, reports it as
  :class:`StreamReset` with the code sent.

Connection errors queue GOAWAY and raise :class:`ProtocolError`; afterwards the connection
takes nothing more. The module is one concept, the connection's frame rules, hence its length.
"""

from __future__ import annotations

import binascii
from typing import Final

from prefork.http2.errors import (
    COMPRESSION_ERROR,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
    DenialOfServiceError,
    FlowControlError,
    ProtocolError,
    StreamClosedError,
)
from prefork.http2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    PingAckReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from prefork.http2.frames import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADER_SIZE,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    LARGEST_MAX_FRAME_SIZE,
    LARGEST_WINDOW,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    STREAM_ID_MASK,
    WINDOW_UPDATE,
    append_data,
    append_goaway,
    append_header,
    append_headers,
    append_ping,
    append_rst_stream,
    append_settings,
    append_settings_ack,
    append_window_update,
    read_header,
    read_settings,
)
from prefork.http2.hpack import HeaderDecoder, HeaderEncoder, HeaderListTooLarge, HpackError
from prefork.http2.limits import Http2Limits

# CONTINUATION frames one header block may span: a request head needs a few; an endless block
# of empty frames costs a frame's handling per 9 bytes (CVE-2024-27316).
MAX_CONTINUATIONS: Final = 64
PREFACE_SIZE: Final = 24
BASE64URL: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Stream:
    """One open stream: which ways it is still open and its flow-control windows."""

    def __init__(self, stream_id: int, send_window: int, receive_window: int,
                 receiving: bool) -> None:
        self.stream_id = stream_id
        self.send_window = send_window  # what we may still send
        self.receive_window = receive_window  # what the client may still send
        self.received = 0  # flow-controlled bytes taken by the app since the last update
        self.receiving = receiving  # the client has not ended it (open or half-closed local)
        self.sending = True  # we have not ended it (open or half-closed remote)
        self.expected_length = -1  # the request's content-length, -1 without one
        self.body_length = 0  # body bytes received, padding left out


class ServerConnection:
    """One HTTP/2 connection, server side; see the module docstring."""

    def __init__(self, limits: Http2Limits) -> None:
        self.limits = limits
        self.max_outbound_frame_size = DEFAULT_MAX_FRAME_SIZE
        self.max_inbound_frame_size = limits.max_frame_size
        self.silent_resets = 0
        self.streams: dict[int, Stream] = {}
        self.highest_stream_id = 0  # the highest stream id the client opened
        self.out = bytearray()
        # the bytes of an incomplete frame, kept as they came until ``needed`` of them are here
        # (joined once: a large frame arriving in many reads is not copied at each)
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.needed = 0
        self.preface_received = False
        self.settings_received = False
        self.settings_unacknowledged = 0
        self.closed = False
        self.close_code = NO_ERROR
        self.goaway_last_stream_id = STREAM_ID_MASK  # above it, new streams are refused
        # the client's side of flow control, and its settings
        self.send_window = DEFAULT_WINDOW
        self.peer_initial_window = DEFAULT_WINDOW
        # ours: what a new stream's receive window is (the announced one once acknowledged)
        self.initial_window = DEFAULT_WINDOW
        self.receive_window = DEFAULT_WINDOW
        self.receive_window_target = DEFAULT_WINDOW
        self.received = 0
        # the header block being received across CONTINUATION frames (stream 0: none)
        self.block_stream_id = 0
        self.block_flags = 0
        self.block_fragments: list[bytes] = []
        self.block_size = 0
        self.block_limit = 2 * limits.max_header_list_size
        self.block_bad_priority = False
        self.decoder = HeaderDecoder(4096, limits.max_header_list_size)
        self.encoder = HeaderEncoder()

    # -- starting -------------------------------------------------------------------------------

    def initiate_connection(self) -> None:
        """Queue our SETTINGS and the connection window's increase."""
        limits = self.limits
        append_settings(self.out, [
            (MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
            (INITIAL_WINDOW_SIZE, limits.initial_window_size),
            (MAX_FRAME_SIZE, limits.max_frame_size),
            (MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
            (ENABLE_PUSH, 0),
        ])
        self.settings_unacknowledged += 1
        increase = limits.connection_window - DEFAULT_WINDOW
        if increase > 0:
            self.increment_flow_control_window(increase)

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        """An h2c upgrade (RFC 7540 §3.2): ``settings_header`` is the request's HTTP2-Settings
        (base64url, unpadded), taken as the client's first SETTINGS; the request itself is
        stream 1, its request side over. Malformed: :class:`ProtocolError`, nothing queued."""
        text = settings_header.strip()
        if not text or text.translate(None, BASE64URL) or len(text) % 4 == 1:
            raise ProtocolError("HTTP2-Settings is not base64url", PROTOCOL_ERROR)
        text = text.replace(b"-", b"+").replace(b"_", b"/")
        payload = binascii.a2b_base64(text + b"=" * (-len(text) % 4))
        if len(payload) % 6:
            raise ProtocolError("HTTP2-Settings is not whole settings", PROTOCOL_ERROR)
        pairs = read_settings(payload, 0, len(payload))
        for identifier, value in pairs:
            code = _setting_error(identifier, value)
            if code:
                raise ProtocolError(f"HTTP2-Settings: setting {identifier} = {value}", code)
        self._apply_settings(pairs)
        self.initiate_connection()
        self.highest_stream_id = 1
        self.streams[1] = Stream(1, self.peer_initial_window, self.initial_window, False)

    # -- receiving ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Take the client's bytes; what they meant. Raises :class:`ProtocolError` (GOAWAY
        queued) when they broke the connection's rules."""
        events: list[Event] = []
        if self.closed:
            return events
        pieces = self.pieces
        if pieces:
            pieces.append(data)
            self.buffered += len(data)
            if self.buffered < self.needed:
                return events
            buffer = b"".join(pieces)
            self.pieces = []
        else:
            buffer = data
        offset = 0
        end = len(buffer)
        needed = HEADER_SIZE
        if not self.preface_received:
            if end < PREFACE_SIZE:
                if not PREFACE.startswith(buffer):
                    raise self._connection_error(PROTOCOL_ERROR, "not the HTTP/2 preface")
                self._keep(buffer, 0, PREFACE_SIZE)
                return events
            if not buffer.startswith(PREFACE):
                raise self._connection_error(PROTOCOL_ERROR, "not the HTTP/2 preface")
            self.preface_received = True
            offset = PREFACE_SIZE
        while end - offset >= HEADER_SIZE:
            length, frame_type, flags, stream_id = read_header(buffer, offset)
            if length > self.max_inbound_frame_size:
                raise self._connection_error(FRAME_SIZE_ERROR, "frame larger than MAX_FRAME_SIZE")
            start = offset + HEADER_SIZE
            if end - start < length:
                if (frame_type in (HEADERS, CONTINUATION)
                        and self.block_size + length > self.block_limit):
                    # refused before it is all here: its bytes are never buffered
                    raise self._too_large_block()
                needed = HEADER_SIZE + length
                break
            offset = start + length
            if self.block_stream_id and frame_type != CONTINUATION:
                raise self._connection_error(PROTOCOL_ERROR, "a frame inside a header block")
            if not self.settings_received:
                if frame_type != SETTINGS or flags & ACK:
                    raise self._connection_error(PROTOCOL_ERROR, "the preface's SETTINGS missing")
                self.settings_received = True
            if frame_type == HEADERS:
                self._receive_headers(buffer, start, offset, flags, stream_id, events)
            elif frame_type == DATA:
                self._receive_data(buffer, start, offset, flags, stream_id, events)
            elif frame_type == WINDOW_UPDATE:
                self._receive_window_update(buffer, start, length, stream_id, events)
            elif frame_type == CONTINUATION:
                self._receive_continuation(buffer, start, offset, flags, stream_id, events)
            elif frame_type == RST_STREAM:
                self._receive_rst_stream(buffer, start, length, stream_id, events)
            elif frame_type == SETTINGS:
                self._receive_settings(buffer, start, offset, flags, stream_id, events)
            elif frame_type == PING:
                if stream_id:
                    raise self._connection_error(PROTOCOL_ERROR, "PING on a stream")
                if length != 8:
                    raise self._connection_error(FRAME_SIZE_ERROR, "PING not 8 bytes long")
                payload = buffer[start:offset]
                if flags & ACK:
                    events.append(PingAckReceived(payload))
                else:
                    append_ping(self.out, payload, True)
                    events.append(PingReceived(payload))
            elif frame_type == PRIORITY:
                self._receive_priority(buffer, start, length, stream_id, events)
            elif frame_type == GOAWAY:
                if stream_id:
                    raise self._connection_error(PROTOCOL_ERROR, "GOAWAY on a stream")
                if length < 8:
                    raise self._connection_error(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
                events.append(ConnectionTerminated(
                    int.from_bytes(buffer[start + 4:start + 8], "big"),
                    int.from_bytes(buffer[start:start + 4], "big") & STREAM_ID_MASK,
                    buffer[start + 8:offset]))
            elif frame_type == PUSH_PROMISE:
                raise self._connection_error(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            else:  # unknown types are ignored (§4.1, §5.5)
                events.append(UnknownFrameReceived(frame_type))
        if offset < end:
            self._keep(buffer, offset, needed)
        return events

    def _keep(self, buffer: bytes, offset: int, needed: int) -> None:
        """Keep the bytes from ``offset`` on until ``needed`` of them are here."""
        rest = buffer[offset:] if offset else buffer
        self.pieces = [rest]
        self.buffered = len(rest)
        self.needed = needed

    def _receive_headers(self, buffer: bytes, start: int, end: int, flags: int, stream_id: int,
                         events: list[Event]) -> None:
        if not stream_id:
            raise self._connection_error(PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & PADDED:
            if start == end:
                raise self._connection_error(FRAME_SIZE_ERROR, "HEADERS too short")
            padding = buffer[start]
            start += 1
            if padding > end - start:
                raise self._connection_error(PROTOCOL_ERROR, "padding longer than the frame")
            end -= padding
        bad_priority = False
        if flags & PRIORITY_FLAG:
            if end - start < 5:
                raise self._connection_error(FRAME_SIZE_ERROR, "HEADERS too short")
            bad_priority = (int.from_bytes(buffer[start:start + 4], "big")
                            & STREAM_ID_MASK) == stream_id
            start += 5
        fragment = buffer[start:end]
        if flags & END_HEADERS:
            self._header_block(stream_id, fragment, flags & END_STREAM != 0, bad_priority,
                               events)
            return
        if len(fragment) > self.block_limit:
            raise self._too_large_block()
        self.block_stream_id = stream_id
        self.block_flags = flags
        self.block_fragments = [fragment]
        self.block_size = len(fragment)
        self.block_bad_priority = bad_priority

    def _receive_continuation(self, buffer: bytes, start: int, end: int, flags: int,
                              stream_id: int, events: list[Event]) -> None:
        if not self.block_stream_id or stream_id != self.block_stream_id:
            raise self._connection_error(PROTOCOL_ERROR, "CONTINUATION outside a header block")
        fragments = self.block_fragments
        size = self.block_size + end - start
        if size > self.block_limit or len(fragments) > MAX_CONTINUATIONS:
            raise self._too_large_block()
        fragments.append(buffer[start:end])
        self.block_size = size
        if flags & END_HEADERS:
            self.block_stream_id = 0
            self.block_size = 0
            self.block_fragments = []
            self._header_block(stream_id, b"".join(fragments),
                               self.block_flags & END_STREAM != 0, self.block_bad_priority,
                               events)

    def _header_block(self, stream_id: int, block: bytes, end_stream: bool, bad_priority: bool,
                      events: list[Event]) -> None:
        """A whole header block: a new stream's request head, or an open stream's trailers.
        Every block is decoded, even one refused, to keep HPACK's table in step (§4.3)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id <= self.highest_stream_id or not stream_id & 1:
                raise self._connection_error(PROTOCOL_ERROR, f"HEADERS cannot open {stream_id}")
            headers = self._decode(block)
            self.highest_stream_id = stream_id
            if stream_id > self.goaway_last_stream_id:  # after announce_goaway
                append_rst_stream(self.out, stream_id, REFUSED_STREAM)
                return
            expected = _content_length(headers)
            if bad_priority or (end_stream and expected > 0):
                # malformed (RFC 9113 §5.3.1, §8.1.1): refused before the caller sees it
                append_rst_stream(self.out, stream_id, PROTOCOL_ERROR)
                return
            stream = Stream(stream_id, self.peer_initial_window, self.initial_window,
                            not end_stream)
            stream.expected_length = expected
            self.streams[stream_id] = stream
            events.append(RequestReceived(stream_id, headers, end_stream))
            if end_stream:
                events.append(StreamEnded(stream_id))
            return
        headers = self._decode(block)
        if not stream.receiving:
            self._stream_error(stream, STREAM_CLOSED, events)
        elif (not end_stream or bad_priority  # trailers end the stream (RFC 9113 §8.1)
              or 0 <= stream.expected_length != stream.body_length):
            self._stream_error(stream, PROTOCOL_ERROR, events)
        else:
            events.append(TrailersReceived(stream_id, headers))
            events.append(StreamEnded(stream_id))
            self._end_receiving(stream)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        try:
            return self.decoder.decode(block)
        # one name per clause: mypyc gives a name one type for the whole function
        except HeaderListTooLarge as too_large:
            raise self._close(DenialOfServiceError(f"header list too large: {too_large}")
                              ) from None
        except HpackError as malformed:
            raise self._connection_error(COMPRESSION_ERROR,
                                         f"bad header block: {malformed}") from None

    def _receive_data(self, buffer: bytes, start: int, end: int, flags: int, stream_id: int,
                      events: list[Event]) -> None:
        if not stream_id:
            raise self._connection_error(PROTOCOL_ERROR, "DATA on stream 0")
        length = end - start
        if flags & PADDED:
            if not length:
                raise self._connection_error(FRAME_SIZE_ERROR, "DATA too short")
            padding = buffer[start]
            start += 1
            if padding > end - start:
                raise self._connection_error(PROTOCOL_ERROR, "padding longer than the frame")
            end -= padding
        if length > self.receive_window:
            raise self._connection_error(FLOW_CONTROL_ERROR, "DATA past the connection window")
        self.receive_window -= length
        stream = self.streams.get(stream_id)
        if stream is None or not stream.receiving or length > stream.receive_window:
            if stream is None:
                if stream_id > self.highest_stream_id:
                    raise self._connection_error(PROTOCOL_ERROR, "DATA on an idle stream")
                append_rst_stream(self.out, stream_id, STREAM_CLOSED)
                self.silent_resets += 1
            else:
                self._stream_error(stream, FLOW_CONTROL_ERROR if stream.receiving
                                   else STREAM_CLOSED, events)
            # nobody takes these bytes: the connection's window gets them back now
            self._connection_taken(length)
            return
        ended = flags & END_STREAM != 0
        expected = stream.expected_length
        if expected >= 0:
            body_length = stream.body_length + end - start
            stream.body_length = body_length
            if body_length > expected or (ended and body_length != expected):
                # the body disagrees with its content-length: malformed (RFC 9113 §8.1.1)
                self._stream_error(stream, PROTOCOL_ERROR, events)
                self._connection_taken(length)
                return
        stream.receive_window -= length
        events.append(DataReceived(stream_id, buffer[start:end], length, ended))
        if ended:
            events.append(StreamEnded(stream_id))
            self._end_receiving(stream)

    def _receive_window_update(self, buffer: bytes, start: int, length: int, stream_id: int,
                               events: list[Event]) -> None:
        if length != 4:
            raise self._connection_error(FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes long")
        increment = int.from_bytes(buffer[start:start + 4], "big") & STREAM_ID_MASK
        if not stream_id:
            if not increment:
                raise self._connection_error(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            window = self.send_window + increment
            if window > LARGEST_WINDOW:
                raise self._connection_error(FLOW_CONTROL_ERROR, "connection window past 2^31-1")
            self.send_window = window
            events.append(WindowUpdated(0, increment))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_stream_id:
                raise self._connection_error(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            self.silent_resets += 1  # a closed stream: nothing to do, yet it cost a frame
            return
        if not increment:
            self._stream_error(stream, PROTOCOL_ERROR, events)
            return
        window = stream.send_window + increment
        if window > LARGEST_WINDOW:
            self._stream_error(stream, FLOW_CONTROL_ERROR, events)
            return
        stream.send_window = window
        events.append(WindowUpdated(stream_id, increment))

    def _receive_rst_stream(self, buffer: bytes, start: int, length: int, stream_id: int,
                            events: list[Event]) -> None:
        if length != 4:
            raise self._connection_error(FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes long")
        if not stream_id:
            raise self._connection_error(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            if stream_id > self.highest_stream_id:
                raise self._connection_error(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            self.silent_resets += 1
            return
        events.append(StreamReset(stream_id, int.from_bytes(buffer[start:start + 4], "big")))

    def _receive_priority(self, buffer: bytes, start: int, length: int, stream_id: int,
                          events: list[Event]) -> None:
        if not stream_id:
            raise self._connection_error(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if length != 5:
            raise self._connection_error(FRAME_SIZE_ERROR, "PRIORITY not 5 bytes long")
        if (int.from_bytes(buffer[start:start + 4], "big") & STREAM_ID_MASK) == stream_id:
            stream = self.streams.get(stream_id)
            if stream is None:
                raise self._connection_error(PROTOCOL_ERROR, "a stream depends on itself")
            self._stream_error(stream, PROTOCOL_ERROR, events)
            return
        events.append(PriorityUpdated(stream_id))

    def _receive_settings(self, buffer: bytes, start: int, end: int, flags: int, stream_id: int,
                          events: list[Event]) -> None:
        if stream_id:
            raise self._connection_error(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if end != start:
                raise self._connection_error(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            if self.settings_unacknowledged:
                self.settings_unacknowledged -= 1
                self._our_settings_acknowledged()
            else:
                self.silent_resets += 1
            return
        if (end - start) % 6:
            raise self._connection_error(FRAME_SIZE_ERROR, "SETTINGS not whole settings")
        pairs = read_settings(buffer, start, end)
        for identifier, value in pairs:
            code = _setting_error(identifier, value)
            if code:
                raise self._connection_error(code, f"setting {identifier} = {value}")
        changed = self._apply_settings(pairs)
        append_settings_ack(self.out)
        events.append(RemoteSettingsChanged(changed))

    def _apply_settings(self, pairs: list[tuple[int, int]]) -> dict[int, int]:
        changed: dict[int, int] = {}
        for identifier, value in pairs:
            changed[identifier] = value
            if identifier == INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                if delta:  # every open stream's window moves by it (§6.9.2)
                    for stream in self.streams.values():
                        window = stream.send_window + delta
                        if window > LARGEST_WINDOW:
                            raise self._connection_error(FLOW_CONTROL_ERROR,
                                                         "a stream window past 2^31-1")
                        stream.send_window = window
            elif identifier == MAX_FRAME_SIZE:
                self.max_outbound_frame_size = value
            elif identifier == HEADER_TABLE_SIZE:
                self.encoder.set_max_table_size(value)
        return changed

    def _our_settings_acknowledged(self) -> None:
        """Our INITIAL_WINDOW_SIZE holds from the client's ACK on (§6.9.2): the open streams'
        receive windows move by the change."""
        window = self.limits.initial_window_size
        delta = window - self.initial_window
        if delta:
            self.initial_window = window
            for stream in self.streams.values():
                stream.receive_window += delta

    # -- sending --------------------------------------------------------------------------------

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                     end_stream: bool = False) -> None:
        stream = self._sending_stream(stream_id)
        append_headers(self.out, stream_id, self.encoder.encode(headers), end_stream,
                       self.max_outbound_frame_size)
        if end_stream:
            self._end_sending(stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        stream = self._sending_stream(stream_id)
        size = len(data)
        # an empty frame costs no window (§6.9.1), even one a SETTINGS change left below zero
        if size and (size > stream.send_window or size > self.send_window):
            raise FlowControlError(f"{size} bytes past the window of stream {stream_id}")
        stream.send_window -= size
        self.send_window -= size
        frame_size = self.max_outbound_frame_size
        if size <= frame_size:
            append_data(self.out, stream_id, data, end_stream)
        else:
            out = self.out
            view = memoryview(data)
            offset = 0
            while offset < size:
                piece = min(frame_size, size - offset)
                last = offset + piece == size
                append_header(out, piece, DATA, END_STREAM if last and end_stream else 0,
                              stream_id)
                out += view[offset:offset + piece]
                offset += piece
        if end_stream:
            self._end_sending(stream)

    def end_stream(self, stream_id: int) -> None:
        self._end_sending(self._sending_stream(stream_id))
        append_data(self.out, stream_id, b"", True)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        if self.closed:
            raise ProtocolError("the connection is closed", self.close_code)
        if self.streams.pop(stream_id, None) is None:
            raise StreamClosedError(stream_id)
        append_rst_stream(self.out, stream_id, error_code)

    def _sending_stream(self, stream_id: int) -> Stream:
        if self.closed:
            raise ProtocolError("the connection is closed", self.close_code)
        stream = self.streams.get(stream_id)
        if stream is None or not stream.sending:
            raise StreamClosedError(stream_id)
        return stream

    def _end_sending(self, stream: Stream) -> None:
        stream.sending = False
        if not stream.receiving:
            del self.streams[stream.stream_id]

    def _end_receiving(self, stream: Stream) -> None:
        stream.receiving = False
        if not stream.sending:
            del self.streams[stream.stream_id]

    # -- flow control ---------------------------------------------------------------------------

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        """The app took ``size`` flow-controlled bytes of ``stream_id``: the windows open again,
        in updates of at least half a window (few frames), or at once for a window that ran
        out."""
        if size < 0:
            raise ValueError("a negative size")
        if self.closed:
            raise ProtocolError("the connection is closed", self.close_code)
        self._connection_taken(size)
        stream = self.streams.get(stream_id)
        if stream is None or not stream.receiving:
            return
        taken = stream.received + size
        increment = _window_increment(taken, stream.receive_window, self.initial_window)
        if increment < 0:
            stream.received = taken
            return
        stream.received = 0
        if increment:
            stream.receive_window += increment
            append_window_update(self.out, stream_id, increment)

    def _connection_taken(self, size: int) -> None:
        taken = self.received + size
        increment = _window_increment(taken, self.receive_window, self.receive_window_target)
        if increment < 0:
            self.received = taken
            return
        self.received = 0
        if increment:
            self.receive_window += increment
            append_window_update(self.out, 0, increment)

    def local_flow_control_window(self, stream_id: int) -> int:
        """What ``send_data`` may send on ``stream_id`` now."""
        stream = self._sending_stream(stream_id)
        return min(stream.send_window, self.send_window)

    def increment_flow_control_window(self, increment: int, stream_id: int = 0) -> None:
        """Open a receive window by ``increment`` beyond what the app took."""
        if not 1 <= increment <= LARGEST_WINDOW:
            raise ValueError(f"a window increment of {increment}")
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is None or not stream.receiving:
                raise StreamClosedError(stream_id)
            if stream.receive_window + increment > LARGEST_WINDOW:
                raise ValueError("a window past 2^31-1")
            stream.receive_window += increment
        else:
            if self.receive_window + increment > LARGEST_WINDOW:
                raise ValueError("a window past 2^31-1")
            self.receive_window += increment
            self.receive_window_target = max(self.receive_window_target, self.receive_window)
        append_window_update(self.out, stream_id, increment)

    # -- the connection's end -------------------------------------------------------------------

    def announce_goaway(self, last_stream_id: int) -> None:
        """The drain's GOAWAY(NO_ERROR): streams above ``last_stream_id`` are refused from now
        on, those open are served."""
        if self.closed:
            raise ProtocolError("the connection is closed", self.close_code)
        self.goaway_last_stream_id = last_stream_id
        append_goaway(self.out, last_stream_id, NO_ERROR)

    def close_connection(self, error_code: int = 0, last_stream_id: int | None = None,
                         additional_data: bytes = b"") -> None:
        """The last GOAWAY; nothing received afterwards is read. Once closed, a no-op."""
        if self.closed:
            return
        append_goaway(self.out, self.highest_stream_id if last_stream_id is None
                      else last_stream_id, error_code, additional_data)
        self.closed = True
        self.close_code = error_code

    def data_to_send(self) -> bytes:
        out = self.out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    # -- errors ---------------------------------------------------------------------------------

    def _connection_error(self, code: int, message: str) -> ProtocolError:
        return self._close(ProtocolError(message, code))

    def _too_large_block(self) -> ProtocolError:
        return self._close(DenialOfServiceError("header block too large"))

    def _close(self, error: ProtocolError) -> ProtocolError:
        """Queue the GOAWAY that says why; the caller raises ``error``."""
        self.close_connection(error.error_code)
        self.pieces = []
        return error

    def _stream_error(self, stream: Stream, code: int, events: list[Event]) -> None:
        """Reset ``stream`` for the client's fault (§5.4.2) and tell the caller."""
        del self.streams[stream.stream_id]
        append_rst_stream(self.out, stream.stream_id, code)
        events.append(StreamReset(stream.stream_id, code))


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The request's content-length, or -1 where it has none; one that is not a number is
    ``prefork.http2.requests``' to refuse."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else -1
    return -1


def _setting_error(identifier: int, value: int) -> int:
    """The error code a setting's value is (§6.5.2), or 0 for a good one."""
    if identifier == ENABLE_PUSH:
        return PROTOCOL_ERROR if value > 1 else 0
    if identifier == INITIAL_WINDOW_SIZE:
        return FLOW_CONTROL_ERROR if value > LARGEST_WINDOW else 0
    if identifier == MAX_FRAME_SIZE:
        return 0 if DEFAULT_MAX_FRAME_SIZE <= value <= LARGEST_MAX_FRAME_SIZE else PROTOCOL_ERROR
    return 0


def _window_increment(taken: int, window: int, target: int) -> int:
    """The WINDOW_UPDATE increment after the app took ``taken`` bytes of a window now at
    ``window`` (``target`` when full), or -1 while it is not worth a frame yet: at half the
    target taken, or once the window ran out (and more than a little was taken)."""
    if taken >= target // 2 or (window <= 0 and taken > min(1024, target // 4)):
        return max(0, min(taken, target - window))
    return -1

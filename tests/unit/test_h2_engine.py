"""prefork's HTTP/2 server connection (``prefork.http2.engine``), driven by ``h2``'s client side:
what the client's frames become (events, or the error and its code on the wire), what the
server's calls put on the wire (checked by the client that reads it), flow control both ways,
the upgrade, the bounds. Frames a client library refuses to send are written raw with
``prefork.http2.frames``, whose serialisers are checked against ``hyperframe`` first."""

from __future__ import annotations

import base64
import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hyperframe.frame import Frame
from hypothesis import given, settings
from hypothesis import strategies as st

from prefork.http2 import frames
from prefork.http2.engine import ServerConnection
from prefork.http2.errors import (
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
from prefork.http2.limits import Http2Limits

pytestmark = pytest.mark.timeout(30)

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
           (b":authority", b"example.org")]
POST = [(b":method", b"POST"), *REQUEST[1:]]
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain"),
            (b"content-length", b"5")]


class Pair:
    """A server connection and an ``h2`` client talking through memory."""

    def __init__(self, limits: Http2Limits | None = None, client_settings: Any = None,
                 handshake: bool = True) -> None:
        self.limits = limits or Http2Limits()
        self.server = ServerConnection(self.limits)
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.client.local_settings = h2.settings.Settings(
            client=True, initial_values=client_settings or {})
        if handshake:
            self.server.initiate_connection()
            self.client.initiate_connection()
            self.events = self.to_server()
            self.to_client()
            self.to_server()  # the client's ACK of our SETTINGS

    def to_server(self, extra: bytes = b"") -> list[Event]:
        return self.server.receive_data(self.client.data_to_send() + extra)

    def raw(self, data: bytes) -> list[Event]:
        return self.server.receive_data(data)

    def to_client(self) -> list[Any]:
        return self.client.receive_data(self.server.data_to_send())

    def request(self, headers: list[tuple[bytes, bytes]] = REQUEST,
                end_stream: bool = True) -> int:
        stream_id: int = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers, end_stream=end_stream)
        return stream_id

    def answer(self, stream_id: int, body: bytes = b"hello") -> list[Any]:
        self.server.send_headers(stream_id, RESPONSE)
        self.server.send_data(stream_id, body, end_stream=True)
        return self.to_client()

    def connection_error(self, data: bytes, code: int,
                         error: type[ProtocolError] = ProtocolError) -> None:
        with pytest.raises(error) as raised:
            self.raw(data)
        assert raised.value.error_code == code
        self.expect_goaway(code)
        assert self.raw(frame(frames.PING, 0, 0, b"x" * 8)) == []  # nothing taken afterwards

    def expect_goaway(self, code: int) -> None:
        sent = wire(self.server.data_to_send())
        assert [(f.type, f.error_code) for f in sent if f.type == "GOAWAY"] == [
            ("GOAWAY", code)], sent

    def expect_reset(self, stream_id: int, code: int) -> None:
        sent = wire(self.server.data_to_send())
        assert [(f.stream_id, f.error_code) for f in sent if f.type == "RST_STREAM"] == [
            (stream_id, code)], sent


class Received:
    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.type = type(frame).__name__.removesuffix("Frame").upper().replace(
            "RSTSTREAM", "RST_STREAM").replace("WINDOWUPDATE", "WINDOW_UPDATE").replace(
            "GOAWAY", "GOAWAY")
        self.stream_id = frame.stream_id
        self.error_code = getattr(frame, "error_code", None)

    def __repr__(self) -> str:
        return repr(self.frame)


def wire(data: bytes) -> list[Received]:
    """The frames in ``data``, parsed by hyperframe."""
    out = []
    while data:
        parsed, length = Frame.parse_frame_header(memoryview(data[:9]))
        parsed.parse_body(memoryview(data[9:9 + length]))
        out.append(Received(parsed))
        data = data[9 + length:]
    return out


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    out = bytearray()
    frames.append_header(out, len(payload), frame_type, flags, stream_id)
    return bytes(out + payload)


def kinds(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


def settings_frame(pairs: dict[int, int], flags: int = 0, stream_id: int = 0) -> bytes:
    return frame(frames.SETTINGS, flags, stream_id,
                 b"".join(struct.pack(">HL", key, value) for key, value in pairs.items()))


# -- frames: the serialisers against hyperframe ------------------------------------------------

def test_serialisers_write_what_hyperframe_reads() -> None:
    out = bytearray()
    frames.append_data(out, 3, b"body", True)
    frames.append_headers(out, 5, b"h" * 40, False, 16)
    frames.append_priority(out, 7, 3, 16, exclusive=True)
    frames.append_rst_stream(out, 9, frames.CANCEL)
    frames.append_settings(out, [(frames.MAX_FRAME_SIZE, 20000), (frames.ENABLE_PUSH, 0)])
    frames.append_settings_ack(out)
    frames.append_push_promise(out, 1, 2, b"block")
    frames.append_ping(out, b"12345678", True)
    frames.append_goaway(out, 11, frames.ENHANCE_YOUR_CALM, b"why")
    frames.append_window_update(out, 0, 2**31 - 1)
    frames.append_continuation(out, 5, b"tail", True)
    parsed = [received.frame for received in wire(bytes(out))]
    data, h1, c1, c2, priority, rst, settings, ack, push, ping, goaway, update, cont = parsed
    assert (data.stream_id, data.data, data.flags) == (3, b"body", {"END_STREAM"})
    assert (h1.data + c1.data + c2.data, h1.flags, c2.flags) == (b"h" * 40, set(),
                                                                 {"END_HEADERS"})
    assert (c1.type, c1.flags) == (frames.CONTINUATION, set())
    assert (priority.depends_on, priority.stream_weight, priority.exclusive) == (3, 15, True)
    assert (rst.stream_id, rst.error_code) == (9, 8)
    assert settings.settings == {frames.MAX_FRAME_SIZE: 20000, frames.ENABLE_PUSH: 0}
    assert ack.flags == {"ACK"}
    assert (push.promised_stream_id, push.data) == (2, b"block")
    assert (ping.opaque_data, ping.flags) == (b"12345678", {"ACK"})
    assert (goaway.last_stream_id, goaway.error_code, goaway.additional_data) == (
        11, 11, b"why")
    assert update.window_increment == 2**31 - 1
    assert (cont.data, cont.flags) == (b"tail", {"END_HEADERS"})


def test_read_header_drops_the_reserved_bit() -> None:
    data = b"xx" + frame(frames.DATA, 1, 5, b"abc")
    data = data[:7] + bytes([data[7] | 0x80]) + data[8:]
    assert frames.read_header(data, 2) == (3, frames.DATA, 1, 5)


# -- the handshake -------------------------------------------------------------------------------

def test_initiate_connection_announces_the_limits_and_the_connection_window() -> None:
    limits = Http2Limits(max_concurrent_streams=50, initial_window_size=100_000,
                         max_frame_size=32768, max_header_list_size=8192)
    server = ServerConnection(limits)
    server.initiate_connection()
    settings, update = wire(server.data_to_send())
    assert settings.frame.settings == {frames.MAX_CONCURRENT_STREAMS: 50,
                                       frames.INITIAL_WINDOW_SIZE: 100_000,
                                       frames.MAX_FRAME_SIZE: 32768,
                                       frames.MAX_HEADER_LIST_SIZE: 8192,
                                       frames.ENABLE_PUSH: 0}
    assert (update.stream_id, update.frame.window_increment) == (
        0, limits.connection_window - 65535)
    assert server.data_to_send() == b""


def test_handshake_with_h2_and_a_request_answered() -> None:
    pair = Pair()
    assert kinds(pair.events) == ["RemoteSettingsChanged"]
    stream_id = pair.request()
    events = pair.to_server()
    assert kinds(events) == ["RequestReceived", "StreamEnded"]
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert (request.stream_id, request.headers, request.stream_ended) == (1, REQUEST, True)
    received = pair.answer(stream_id)
    response = next(e for e in received if isinstance(e, h2.events.ResponseReceived))
    assert response.headers == RESPONSE
    data = next(e for e in received if isinstance(e, h2.events.DataReceived))
    assert data.data == b"hello"
    assert any(isinstance(e, h2.events.StreamEnded) for e in received)
    assert pair.server.streams == {}  # closed both ways: forgotten


def test_bytes_one_at_a_time_give_the_same_events() -> None:
    pair = Pair(handshake=False)
    pair.server.initiate_connection()
    pair.client.initiate_connection()
    pair.client.receive_data(pair.server.data_to_send())
    pair.request(POST, end_stream=False)
    pair.client.send_data(1, b"body", end_stream=True)
    data = pair.client.data_to_send()
    events: list[Event] = []
    for index in range(len(data)):
        events += pair.server.receive_data(data[index:index + 1])
    assert kinds(events) == ["RemoteSettingsChanged", "RequestReceived", "DataReceived",
                             "StreamEnded"]


def test_a_large_frame_in_many_reads() -> None:
    pair = Pair(Http2Limits(max_frame_size=65536, initial_window_size=100_000))
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    data = frame(frames.DATA, frames.END_STREAM, stream_id, bytes(range(250)) * 240)
    events: list[Event] = []
    for offset in range(0, len(data), 1000):
        events += pair.raw(data[offset:offset + 1000])
        assert events == [] or offset + 1000 >= len(data)
    assert kinds(events) == ["DataReceived", "StreamEnded"]
    assert events[0].data == bytes(range(250)) * 240  # type: ignore[attr-defined]


def test_a_wrong_preface_and_a_first_frame_other_than_settings_are_protocol_errors() -> None:
    server = ServerConnection(Http2Limits())
    with pytest.raises(ProtocolError):
        server.receive_data(b"GET / HTTP/1.1\r\n")
    server = ServerConnection(Http2Limits())
    with pytest.raises(ProtocolError) as raised:
        server.receive_data(frames.PREFACE + frame(frames.PING, 0, 0, b"x" * 8))
    assert raised.value.error_code == frames.PROTOCOL_ERROR


# -- HEADERS, CONTINUATION, trailers ---------------------------------------------------------

def test_continuation_both_ways() -> None:
    pair = Pair(client_settings={h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})
    big = [(b"x-big-%d" % index, b"v" * 4000) for index in range(10)]  # 40 KB: 3 frames
    stream_id = pair.request([*REQUEST, *big])
    sent = pair.client.data_to_send()
    assert [f.type for f in wire(sent)].count("CONTINUATION") >= 1
    events = pair.raw(sent)
    assert kinds(events) == ["RequestReceived", "StreamEnded"]
    assert events[0].headers == [*REQUEST, *big]  # type: ignore[attr-defined]
    pair.server.send_headers(stream_id, [(b":status", b"200"), *big], end_stream=True)
    out = pair.server.data_to_send()
    assert [f.type for f in wire(out)] == ["HEADERS", "CONTINUATION", "CONTINUATION"]
    [response, ended] = pair.client.receive_data(out)
    assert response.headers == [(b":status", b"200"), *big]
    assert isinstance(ended, h2.events.StreamEnded)


def test_trailers() -> None:
    pair = Pair()
    stream_id = pair.request(POST, end_stream=False)
    pair.client.send_data(stream_id, b"abc")
    pair.client.send_headers(stream_id, [(b"x-checksum", b"1")], end_stream=True)
    events = pair.to_server()
    assert kinds(events) == ["RequestReceived", "DataReceived", "TrailersReceived",
                             "StreamEnded"]
    assert events[2].headers == [(b"x-checksum", b"1")]  # type: ignore[attr-defined]
    assert not pair.server.streams[stream_id].receiving
    # the response's trailers, the other way
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"hello")
    pair.server.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
    received = pair.to_client()
    trailers = next(e for e in received if isinstance(e, h2.events.TrailersReceived))
    assert trailers.headers == [(b"grpc-status", b"0")]
    assert pair.server.streams == {}


def test_trailers_without_end_stream_reset_the_stream() -> None:
    pair = Pair()
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    block = pair.client.encoder.encode([(b"x-t", b"1")])
    events = pair.raw(frame(frames.HEADERS, frames.END_HEADERS, stream_id, block))
    assert kinds(events) == ["StreamReset"]
    assert events[0].error_code == frames.PROTOCOL_ERROR  # type: ignore[attr-defined]
    pair.expect_reset(stream_id, frames.PROTOCOL_ERROR)


def test_headers_on_a_half_closed_stream_are_stream_closed() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    block = pair.client.encoder.encode([(b"x-late", b"1")])
    events = pair.raw(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, stream_id,
                            block))
    assert kinds(events) == ["StreamReset"]
    pair.expect_reset(stream_id, frames.STREAM_CLOSED)


@pytest.mark.parametrize("stream_id", [2, 1], ids=["even", "not-increasing"])
def test_headers_that_cannot_open_a_stream(stream_id: int) -> None:
    pair = Pair()
    if stream_id == 1:
        pair.client.send_headers(3, REQUEST, end_stream=True)
        pair.to_server()
    block = pair.client.encoder.encode(REQUEST)
    pair.connection_error(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM,
                                stream_id, block), frames.PROTOCOL_ERROR)


def test_headers_reusing_a_closed_stream_end_the_connection() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.answer(stream_id)
    block = pair.client.encoder.encode(REQUEST)
    pair.connection_error(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM,
                                stream_id, block), frames.PROTOCOL_ERROR)


def test_headers_with_padding_and_priority() -> None:
    pair = Pair()
    block = pair.client.encoder.encode(REQUEST)
    payload = bytes([3]) + struct.pack(">LB", 0x80000000, 15) + block + b"\x00" * 3
    events = pair.raw(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM
                            | frames.PADDED | frames.PRIORITY_FLAG, 1, payload))
    assert kinds(events) == ["RequestReceived", "StreamEnded"]
    assert events[0].headers == REQUEST  # type: ignore[attr-defined]


def test_headers_padding_longer_than_the_frame() -> None:
    pair = Pair()
    block = pair.client.encoder.encode(REQUEST)
    pair.connection_error(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM
                                | frames.PADDED, 1, bytes([len(block) + 1]) + block),
                          frames.PROTOCOL_ERROR)


def test_headers_depending_on_their_own_stream_are_refused_and_decoded() -> None:
    pair = Pair()
    block = pair.client.encoder.encode([*REQUEST, (b"x-indexed", b"1")])
    events = pair.raw(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM
                            | frames.PRIORITY_FLAG, 1, struct.pack(">LB", 1, 15) + block))
    assert events == []
    pair.expect_reset(1, frames.PROTOCOL_ERROR)
    # the block was decoded: the field it indexed is known to the next block
    pair.client.send_headers(3, [*REQUEST, (b"x-indexed", b"1")], end_stream=True)
    events = pair.to_server()
    assert events[0].headers == [*REQUEST, (b"x-indexed", b"1")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", ["without-headers", "other-stream", "frame-between"])
def test_continuation_out_of_place(case: str) -> None:
    pair = Pair()
    block = pair.client.encoder.encode(REQUEST)
    if case == "without-headers":
        data = frame(frames.CONTINUATION, frames.END_HEADERS, 1, block)
    elif case == "other-stream":
        data = (frame(frames.HEADERS, frames.END_STREAM, 1, block[:3])
                + frame(frames.CONTINUATION, frames.END_HEADERS, 3, block[3:]))
    else:
        data = (frame(frames.HEADERS, frames.END_STREAM, 1, block[:3])
                + frame(frames.PING, 0, 0, b"x" * 8)
                + frame(frames.CONTINUATION, frames.END_HEADERS, 1, block[3:]))
    pair.connection_error(data, frames.PROTOCOL_ERROR)


def test_a_header_block_is_refused_once_it_passes_twice_the_list_limit() -> None:
    pair = Pair(Http2Limits(max_header_list_size=4096))
    block = pair.client.encoder.encode(REQUEST)
    data = frame(frames.HEADERS, frames.END_STREAM, 1, block)
    data += frame(frames.CONTINUATION, 0, 1, b"\x00" * 4000)
    assert pair.raw(data) == []
    # the next CONTINUATION's header alone is enough: its payload is never waited for
    pair.connection_error(frame(frames.CONTINUATION, 0, 1, b"\x00" * 5000)[:20],
                          frames.ENHANCE_YOUR_CALM, DenialOfServiceError)


def test_a_header_block_of_too_many_continuations_is_refused() -> None:
    pair = Pair()
    data = frame(frames.HEADERS, frames.END_STREAM, 1, pair.client.encoder.encode(REQUEST))
    data += frame(frames.CONTINUATION, 0, 1, b"") * 100
    pair.connection_error(data, frames.ENHANCE_YOUR_CALM, DenialOfServiceError)


def test_a_header_list_over_the_limit_is_enhance_your_calm() -> None:
    pair = Pair(Http2Limits(max_header_list_size=1000))
    block = pair.client.encoder.encode([*REQUEST, (b"x-big", b"v" * 1500)])
    pair.connection_error(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1,
                                block), frames.ENHANCE_YOUR_CALM, DenialOfServiceError)


def test_a_malformed_header_block_is_compression_error() -> None:
    pair = Pair()
    pair.connection_error(frame(frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, 1,
                                b"\xff\xff\xff\xff\xff\xff\xff"), frames.COMPRESSION_ERROR)


def test_the_peers_header_table_size_reaches_the_encoder() -> None:
    pair = Pair(client_settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    for _ in range(3):
        stream_id = pair.request()
        pair.to_server()
        received = pair.answer(stream_id)
        assert any(isinstance(e, h2.events.ResponseReceived) for e in received)


# -- DATA and flow control --------------------------------------------------------------------

def test_data_with_padding_counts_the_padding() -> None:
    pair = Pair()
    stream_id = pair.request(POST, end_stream=False)
    pair.client.send_data(stream_id, b"abc", end_stream=True, pad_length=10)
    events = pair.to_server()
    data = events[1]
    assert isinstance(data, DataReceived)
    assert (data.data, data.flow_controlled_length, data.stream_ended) == (b"abc", 14, True)
    assert kinds(events)[-1] == "StreamEnded"


def test_data_on_stream_zero_and_on_an_idle_stream() -> None:
    Pair().connection_error(frame(frames.DATA, 0, 0, b"x"), frames.PROTOCOL_ERROR)
    Pair().connection_error(frame(frames.DATA, 0, 5, b"x"), frames.PROTOCOL_ERROR)


def test_data_on_a_closed_stream_is_reset_and_counts_in_the_connection_window() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.answer(stream_id)
    window = pair.server.receive_window
    assert pair.raw(frame(frames.DATA, 0, stream_id, b"late")) == []
    assert pair.server.silent_resets == 1
    pair.expect_reset(stream_id, frames.STREAM_CLOSED)
    # given back to the connection at once, in an update once it is worth one
    assert pair.server.receive_window == window - 4 and pair.server.received == 4


def test_data_on_a_half_closed_stream_is_stream_closed() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    events = pair.raw(frame(frames.DATA, 0, stream_id, b"after the end"))
    assert kinds(events) == ["StreamReset"]
    assert events[0].error_code == frames.STREAM_CLOSED  # type: ignore[attr-defined]
    pair.expect_reset(stream_id, frames.STREAM_CLOSED)
    assert pair.server.streams == {}


def test_data_past_the_stream_window_resets_the_stream() -> None:
    pair = Pair()
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    chunk = frame(frames.DATA, 0, stream_id, b"x" * 16384)
    events = pair.raw(chunk * 3 + frame(frames.DATA, 0, stream_id, b"x" * 16383))
    assert kinds(events) == ["DataReceived"] * 3 + ["DataReceived"]
    events = pair.raw(frame(frames.DATA, 0, stream_id, b"x"))
    assert kinds(events) == ["StreamReset"]
    pair.expect_reset(stream_id, frames.FLOW_CONTROL_ERROR)


def test_data_past_the_connection_window_ends_the_connection() -> None:
    limits = Http2Limits(max_concurrent_streams=1)  # connection window 65535
    pair = Pair(limits)
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    pair.server.increment_flow_control_window(100_000, stream_id)
    pair.server.data_to_send()
    data = frame(frames.DATA, 0, stream_id, b"x" * 16384) * 3
    data += frame(frames.DATA, 0, stream_id, b"x" * 16383)
    assert len(pair.raw(data)) == 4
    pair.connection_error(frame(frames.DATA, 0, stream_id, b"x" * 100),
                          frames.FLOW_CONTROL_ERROR)


def test_acknowledged_data_opens_the_windows_by_half_a_window_at_least() -> None:
    pair = Pair(Http2Limits(max_concurrent_streams=1))  # both windows 65535
    stream_id = pair.request(POST, end_stream=False)
    pair.client.send_data(stream_id, b"x" * 16384)
    pair.client.send_data(stream_id, b"x" * 16384)
    pair.client.send_data(stream_id, b"x" * 16384)
    pair.to_server()
    pair.server.acknowledge_received_data(16384, stream_id)
    assert pair.server.data_to_send() == b""  # a quarter: not worth a frame
    pair.server.acknowledge_received_data(16384, stream_id)
    updates = wire(pair.server.data_to_send())
    assert sorted((u.stream_id, u.frame.window_increment) for u in updates) == [
        (0, 32768), (1, 32768)]
    pair.server.acknowledge_received_data(16384, stream_id)
    assert pair.server.data_to_send() == b""
    assert pair.server.streams[stream_id].receive_window == 65535 - 49152 + 32768
    assert pair.server.receive_window == 65535 - 49152 + 32768


def test_acknowledging_a_stream_no_longer_open_updates_the_connection_alone() -> None:
    pair = Pair(Http2Limits(max_concurrent_streams=1))
    stream_id = pair.request(POST, end_stream=False)
    for size in (16384, 16384, 7232):
        pair.client.send_data(stream_id, b"x" * size)
    pair.to_server()
    pair.server.reset_stream(stream_id, frames.CANCEL)
    pair.server.data_to_send()
    pair.server.acknowledge_received_data(40000, stream_id)
    [update] = wire(pair.server.data_to_send())
    assert (update.stream_id, update.frame.window_increment) == (0, 40000)


def test_send_windows_flow_control_error_and_window_updates() -> None:
    pair = Pair(client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    stream_id = pair.request()
    pair.to_server()
    server = pair.server
    assert server.local_flow_control_window(stream_id) == 10
    server.send_headers(stream_id, [(b":status", b"200")])
    with pytest.raises(FlowControlError):
        server.send_data(stream_id, b"x" * 11)
    server.send_data(stream_id, b"x" * 10)
    assert server.local_flow_control_window(stream_id) == 0
    pair.to_client()
    pair.client.increment_flow_control_window(5, stream_id)
    events = pair.to_server()
    assert kinds(events) == ["WindowUpdated"]
    assert (events[0].stream_id, events[0].delta) == (stream_id, 5)  # type: ignore[attr-defined]
    assert server.local_flow_control_window(stream_id) == 5


def test_a_change_of_initial_window_size_moves_the_open_streams_windows() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"x" * 1000)
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    events = pair.to_server()
    assert kinds(events) == ["RemoteSettingsChanged"]
    assert events[0].changed == {frames.INITIAL_WINDOW_SIZE: 100}  # type: ignore[attr-defined]
    assert pair.server.streams[stream_id].send_window == 100 - 1000
    assert pair.server.local_flow_control_window(stream_id) == -900
    with pytest.raises(FlowControlError):
        pair.server.send_data(stream_id, b"x")
    assert [f.type for f in wire(pair.server.data_to_send())][-1] == "SETTINGS"  # the ACK


def test_an_empty_end_of_stream_goes_out_below_a_window_of_zero() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"x" * 1000)
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    pair.to_server()
    assert pair.server.local_flow_control_window(stream_id) == -1000
    pair.server.send_data(stream_id, b"", end_stream=True)  # no flow-controlled bytes
    sent = wire(pair.server.data_to_send())
    last = sent[-1].frame
    assert (sent[-1].type, last.flags, last.data) == ("DATA", {"END_STREAM"}, b"")


def test_a_settings_change_that_overflows_a_stream_window() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.raw(frame(frames.WINDOW_UPDATE, 0, stream_id, struct.pack(">L", 2**31 - 1 - 65535)))
    pair.connection_error(settings_frame({frames.INITIAL_WINDOW_SIZE: 65536}),
                          frames.FLOW_CONTROL_ERROR)


def test_data_is_split_at_the_peers_frame_size() -> None:
    pair = Pair(client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100_000})
    pair.client.increment_flow_control_window(100_000)
    stream_id = pair.request()
    pair.to_server()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"y" * 40000, end_stream=True)
    sent = wire(pair.server.data_to_send())
    assert [(f.type, len(f.frame.data)) for f in sent[1:]] == [
        ("DATA", 16384), ("DATA", 16384), ("DATA", 7232)]
    assert [f.frame.flags for f in sent[1:]] == [set(), set(), {"END_STREAM"}]


def test_increment_flow_control_window() -> None:
    pair = Pair()
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    pair.server.increment_flow_control_window(1000, stream_id)
    pair.server.increment_flow_control_window(2000)
    updates = wire(pair.server.data_to_send())
    assert [(u.stream_id, u.frame.window_increment) for u in updates] == [(1, 1000), (0, 2000)]
    with pytest.raises(ValueError):
        pair.server.increment_flow_control_window(0)


# -- WINDOW_UPDATE, RST_STREAM, PRIORITY, PING, SETTINGS, GOAWAY, unknown frames ------------

def test_window_update_errors() -> None:
    Pair().connection_error(frame(frames.WINDOW_UPDATE, 0, 0, struct.pack(">L", 0)),
                            frames.PROTOCOL_ERROR)
    Pair().connection_error(frame(frames.WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1)),
                            frames.FLOW_CONTROL_ERROR)
    Pair().connection_error(frame(frames.WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"),
                            frames.FRAME_SIZE_ERROR)
    Pair().connection_error(frame(frames.WINDOW_UPDATE, 0, 9, struct.pack(">L", 1)),
                            frames.PROTOCOL_ERROR)  # an idle stream
    for increment, code in ((0, frames.PROTOCOL_ERROR), (2**31 - 1, frames.FLOW_CONTROL_ERROR)):
        pair = Pair()
        stream_id = pair.request()
        pair.to_server()
        events = pair.raw(frame(frames.WINDOW_UPDATE, 0, stream_id,
                                struct.pack(">L", increment)))
        assert kinds(events) == ["StreamReset"]
        pair.expect_reset(stream_id, code)


def test_window_update_on_a_closed_stream_is_counted_not_reported() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.answer(stream_id)
    assert pair.raw(frame(frames.WINDOW_UPDATE, 0, stream_id, struct.pack(">L", 1))) == []
    assert pair.server.silent_resets == 1


def test_rst_stream() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.client.reset_stream(stream_id, 8)
    events = pair.to_server()
    assert kinds(events) == ["StreamReset"]
    assert (events[0].stream_id, events[0].error_code) == (1, 8)  # type: ignore[attr-defined]
    assert pair.server.streams == {}
    with pytest.raises(StreamClosedError):
        pair.server.send_headers(stream_id, RESPONSE)
    # again, on the stream now closed: counted, nothing else
    assert pair.raw(frame(frames.RST_STREAM, 0, stream_id, struct.pack(">L", 8))) == []
    assert pair.server.silent_resets == 1
    Pair().connection_error(frame(frames.RST_STREAM, 0, 7, struct.pack(">L", 8)),
                            frames.PROTOCOL_ERROR)
    Pair().connection_error(frame(frames.RST_STREAM, 0, 0, struct.pack(">L", 8)),
                            frames.PROTOCOL_ERROR)
    Pair().connection_error(frame(frames.RST_STREAM, 0, 1, b"\x00" * 5),
                            frames.FRAME_SIZE_ERROR)


def test_priority() -> None:
    pair = Pair()
    events = pair.raw(frame(frames.PRIORITY, 0, 9, struct.pack(">LB", 0, 200)))
    assert kinds(events) == ["PriorityUpdated"] and events[0].stream_id == 9  # type: ignore[attr-defined]
    # an idle stream named by PRIORITY is not opened: stream 3 can still open
    pair.request()
    assert kinds(pair.to_server()) == ["RequestReceived", "StreamEnded"]
    events = pair.raw(frame(frames.PRIORITY, 0, 1, struct.pack(">LB", 1, 16)))
    assert kinds(events) == ["StreamReset"]  # depends on itself
    pair.expect_reset(1, frames.PROTOCOL_ERROR)
    Pair().connection_error(frame(frames.PRIORITY, 0, 0, struct.pack(">LB", 1, 16)),
                            frames.PROTOCOL_ERROR)
    Pair().connection_error(frame(frames.PRIORITY, 0, 1, b"\x00" * 4),
                            frames.FRAME_SIZE_ERROR)


def test_ping() -> None:
    pair = Pair()
    events = pair.raw(frame(frames.PING, 0, 0, b"12345678"))
    assert isinstance(events[0], PingReceived) and events[0].data == b"12345678"
    [pong] = wire(pair.server.data_to_send())
    assert (pong.type, pong.frame.flags, pong.frame.opaque_data) == ("PING", {"ACK"},
                                                                      b"12345678")
    events = pair.raw(frame(frames.PING, frames.ACK, 0, b"abcdefgh"))
    assert isinstance(events[0], PingAckReceived) and events[0].data == b"abcdefgh"
    assert pair.server.data_to_send() == b""
    Pair().connection_error(frame(frames.PING, 0, 0, b"1234567"), frames.FRAME_SIZE_ERROR)
    Pair().connection_error(frame(frames.PING, 0, 1, b"12345678"), frames.PROTOCOL_ERROR)


BAD_SETTINGS = {
    "enable-push-2": (settings_frame({frames.ENABLE_PUSH: 2}), frames.PROTOCOL_ERROR),
    "window-2^31": (settings_frame({frames.INITIAL_WINDOW_SIZE: 2**31}),
                    frames.FLOW_CONTROL_ERROR),
    "frame-size-too-small": (settings_frame({frames.MAX_FRAME_SIZE: 16383}),
                             frames.PROTOCOL_ERROR),
    "frame-size-too-large": (settings_frame({frames.MAX_FRAME_SIZE: 2**24}),
                             frames.PROTOCOL_ERROR),
    "length-not-a-multiple-of-6": (frame(frames.SETTINGS, 0, 0, b"\x00\x01\x00\x00"),
                                   frames.FRAME_SIZE_ERROR),
    "on-a-stream": (settings_frame({}, stream_id=1), frames.PROTOCOL_ERROR),
    "ack-with-a-payload": (settings_frame({frames.ENABLE_PUSH: 0}, flags=frames.ACK),
                           frames.FRAME_SIZE_ERROR),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_settings(case: str) -> None:
    data, code = BAD_SETTINGS[case]
    Pair().connection_error(data, code)


def test_settings_are_applied_acknowledged_and_reported() -> None:
    pair = Pair()
    events = pair.raw(settings_frame({0x99: 7, frames.MAX_FRAME_SIZE: 20000}))
    assert isinstance(events[0], RemoteSettingsChanged)
    assert events[0].changed == {0x99: 7, frames.MAX_FRAME_SIZE: 20000}
    assert pair.server.max_outbound_frame_size == 20000
    [ack] = wire(pair.server.data_to_send())
    assert (ack.type, ack.frame.flags) == ("SETTINGS", {"ACK"})
    # an ACK of nothing we sent is counted as a frame that asks for nothing
    assert pair.raw(settings_frame({}, flags=frames.ACK)) == []
    assert pair.server.silent_resets == 1


def test_our_initial_window_holds_once_acknowledged() -> None:
    pair = Pair(Http2Limits(initial_window_size=1000), handshake=False)
    pair.server.initiate_connection()
    pair.client.initiate_connection()
    pair.to_server()
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    assert pair.server.streams[stream_id].receive_window == 65535  # not acknowledged yet
    pair.to_client()
    pair.to_server()  # the ACK
    assert pair.server.streams[stream_id].receive_window == 1000


def test_push_promise_from_a_client() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    out = bytearray()
    frames.append_push_promise(out, stream_id, 2, pair.client.encoder.encode(REQUEST))
    pair.connection_error(bytes(out), frames.PROTOCOL_ERROR)


def test_frame_larger_than_max_frame_size() -> None:
    pair = Pair()
    pair.connection_error(frame(frames.DATA, 0, 1, b"x" * 16385)[:20], frames.FRAME_SIZE_ERROR)


def test_unknown_frames_are_reported_and_ignored() -> None:
    pair = Pair()
    events = pair.raw(frame(0xFA, 0xFF, 0, b"whatever") + frame(0x42, 0, 1, b"\x00" * 100))
    assert [e.frame_type for e in events if isinstance(e, UnknownFrameReceived)] == [0xFA,
                                                                                      0x42]


def test_goaway_from_the_client_keeps_its_streams() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.client.close_connection(error_code=0, additional_data=b"bye")
    events = pair.to_server()
    assert isinstance(events[0], ConnectionTerminated)
    assert (events[0].error_code, events[0].last_stream_id,
            events[0].additional_data) == (0, 0, b"bye")
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.send_data(stream_id, b"hello", end_stream=True)
    sent = wire(pair.server.data_to_send())
    assert [f.type for f in sent] == ["HEADERS", "DATA"]


def test_announce_goaway_refuses_new_streams_and_serves_the_open_ones() -> None:
    pair = Pair()
    first = pair.request()
    pair.to_server()
    pair.server.announce_goaway(first)
    [goaway] = wire(pair.server.data_to_send())
    assert (goaway.frame.last_stream_id, goaway.error_code) == (first, 0)
    late = pair.request([*REQUEST, (b"x-late", b"1")])
    assert pair.to_server() == []
    pair.expect_reset(late, frames.REFUSED_STREAM)
    # the refused block was decoded: the next one, which refers to it, decodes too
    pair.request([*REQUEST, (b"x-late", b"1")])
    assert pair.to_server() == []
    pair.server.data_to_send()
    pair.server.send_headers(first, RESPONSE, end_stream=True)
    pair.server.close_connection(last_stream_id=first)
    sent = wire(pair.server.data_to_send())
    assert [f.type for f in sent] == ["HEADERS", "GOAWAY"]
    assert pair.raw(frame(frames.PING, 0, 0, b"x" * 8)) == []
    with pytest.raises(ProtocolError):
        pair.server.send_headers(first, RESPONSE)


# -- the sending side's rules ------------------------------------------------------------------

def test_sending_on_streams_not_open_for_it() -> None:
    pair = Pair()
    stream_id = pair.request(POST, end_stream=False)
    pair.to_server()
    with pytest.raises(StreamClosedError):
        pair.server.send_headers(3, RESPONSE)
    pair.server.send_headers(stream_id, RESPONSE, end_stream=True)
    with pytest.raises(StreamClosedError):
        pair.server.send_data(stream_id, b"x")
    with pytest.raises(StreamClosedError):
        pair.server.end_stream(stream_id)
    # half-closed (local): the client's body still comes; then reset from our side
    pair.client.send_data(stream_id, b"abc")
    assert kinds(pair.to_server()) == ["DataReceived"]
    pair.server.reset_stream(stream_id, frames.NO_ERROR)
    assert pair.server.streams == {}
    with pytest.raises(StreamClosedError):
        pair.server.reset_stream(stream_id)


def test_end_stream_sends_an_empty_data_frame() -> None:
    pair = Pair()
    stream_id = pair.request()
    pair.to_server()
    pair.server.send_headers(stream_id, RESPONSE)
    pair.server.end_stream(stream_id)
    sent = wire(pair.server.data_to_send())
    assert [(f.type, f.frame.flags) for f in sent][-1] == ("DATA", {"END_STREAM"})
    assert pair.server.streams == {}


# -- the h2c upgrade -----------------------------------------------------------------------------

def test_upgrade() -> None:
    server = ServerConnection(Http2Limits())
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    header = client.initiate_upgrade_connection()
    server.initiate_upgrade_connection(header)
    assert 1 in server.streams and not server.streams[1].receiving
    server.send_headers(1, RESPONSE)
    server.send_data(1, b"hello", end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert kinds(events) == ["RemoteSettingsChanged"]
    received = client.receive_data(server.data_to_send())
    assert [e.data for e in received if isinstance(e, h2.events.DataReceived)] == [b"hello"]
    # the next stream is 3
    client.send_headers(3, REQUEST, end_stream=True)
    assert kinds(server.receive_data(client.data_to_send())) == ["RequestReceived",
                                                                 "StreamEnded"]


def test_upgrade_applies_the_settings_header() -> None:
    server = ServerConnection(Http2Limits())
    header = base64.urlsafe_b64encode(struct.pack(">HLHL", frames.INITIAL_WINDOW_SIZE, 10,
                                                  frames.MAX_FRAME_SIZE, 20000)).rstrip(b"=")
    server.initiate_upgrade_connection(header)
    assert server.local_flow_control_window(1) == 10
    assert server.max_outbound_frame_size == 20000
    assert [f.type for f in wire(server.data_to_send())] == ["SETTINGS", "WINDOW_UPDATE"]


@pytest.mark.parametrize("header", [b"!!!notbase64", b"AAEAAA", b"AAIAAAAC", b"AAUAAAAA",
                                    b"AAMAAABk=", b"", b"A"],
                         ids=["not-base64", "not-whole", "push-2", "frame-size-0", "padded",
                              "empty", "one-char"])
def test_upgrade_with_bad_settings(header: bytes) -> None:
    server = ServerConnection(Http2Limits())
    with pytest.raises(ProtocolError):
        server.initiate_upgrade_connection(header)
    assert server.data_to_send() == b""


def test_events_carry_what_the_spec_names() -> None:
    assert (StreamEnded(3).stream_id, WindowUpdated(0, 5).delta,
            PriorityUpdated(9).stream_id, TrailersReceived(1, []).headers,
            StreamReset(1, 8).error_code) == (3, 5, 9, [], 8)


# -- content-length against the body (RFC 9113 §8.1.1) -----------------------------------------

WITH_LENGTH = [*POST, (b"content-length", b"5")]


@pytest.mark.parametrize(("body", "trailers"), [(b"12345", False), (b"12345", True)])
def test_a_body_that_matches_its_content_length(body: bytes, trailers: bool) -> None:
    pair = Pair()
    stream_id = pair.request(WITH_LENGTH, end_stream=False)
    pair.client.send_data(stream_id, body[:2])
    pair.client.send_data(stream_id, body[2:], end_stream=not trailers)
    if trailers:
        pair.client.send_headers(stream_id, [(b"x-t", b"1")], end_stream=True)
    assert kinds(pair.to_server())[-1] == "StreamEnded"


@pytest.mark.parametrize("case", ["shorter", "longer", "shorter-then-trailers"])
def test_a_body_that_disagrees_with_its_content_length_resets_the_stream(case: str) -> None:
    pair = Pair()
    stream_id = pair.request(WITH_LENGTH, end_stream=False)
    pair.to_server()
    if case == "shorter":
        data = frame(frames.DATA, frames.END_STREAM, stream_id, b"1234")
    elif case == "longer":
        data = frame(frames.DATA, 0, stream_id, b"123456")
    else:
        data = frame(frames.DATA, 0, stream_id, b"1234") + frame(
            frames.HEADERS, frames.END_HEADERS | frames.END_STREAM, stream_id,
            pair.client.encoder.encode([(b"x-t", b"1")]))
    events = pair.raw(data)
    assert kinds(events)[-1] == "StreamReset"
    pair.expect_reset(stream_id, frames.PROTOCOL_ERROR)
    assert pair.server.streams == {}


def test_a_content_length_on_a_request_without_body_is_refused() -> None:
    pair = Pair()
    pair.request(WITH_LENGTH, end_stream=True)
    assert pair.to_server() == []
    pair.expect_reset(1, frames.PROTOCOL_ERROR)


# -- any frames ------------------------------------------------------------------------------

FRAME_TYPES = [frames.DATA, frames.HEADERS, frames.PRIORITY, frames.RST_STREAM, frames.SETTINGS,
               frames.PUSH_PROMISE, frames.PING, frames.GOAWAY, frames.WINDOW_UPDATE,
               frames.CONTINUATION, 0x42]
any_frame = st.tuples(st.sampled_from(FRAME_TYPES), st.sampled_from([0, 1, 4, 5, 8, 0x20, 0xFF]),
                      st.sampled_from([0, 1, 2, 3, 5, 99]),
                      st.one_of(st.binary(max_size=24),
                                st.sampled_from([b"", b"\x00" * 4, b"\x00" * 5, b"\x00\x01" * 3,
                                                 b"\x00\x00\x00\x01", b"\x00" * 8])))


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(any_frame, min_size=1, max_size=8), st.booleans())
def test_any_frames_give_events_or_a_protocol_error(
        sent: list[tuple[int, int, int, bytes]], block: bool) -> None:
    """Whatever frames come, the engine reports events or raises ProtocolError (GOAWAY queued),
    and the streams it keeps open can still be answered."""
    pair = Pair()
    pair.request(POST, end_stream=False)
    pair.to_server()
    data = b"".join(frame(frame_type, flags, stream_id,
                          pair.client.encoder.encode(REQUEST) if block and frame_type
                          == frames.HEADERS else payload)
                    for frame_type, flags, stream_id, payload in sent)
    try:
        pair.raw(data)
    except ProtocolError:
        assert pair.server.closed
        return
    for stream_id in list(pair.server.streams):
        stream = pair.server.streams[stream_id]
        if stream.sending:
            pair.server.send_headers(stream_id, [(b":status", b"200")])
            if pair.server.local_flow_control_window(stream_id) > 0:
                pair.server.send_data(stream_id, b"x", end_stream=True)
    wire(pair.server.data_to_send())

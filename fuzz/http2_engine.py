"""Coverage-guided fuzzing of the HTTP/2 engine and its HPACK decoder with atheris (not run in
CI).

Engine mode (the default): each input's first byte chooses whether the client preface is put
in front (low bit) and the size of the pieces the rest is fed in (1 to 128 bytes); the rest is
frames. After each ``receive_data`` every request is answered (HEADERS, then DATA within
``local_flow_control_window``), every DATA acknowledged, and the engine checked: nothing but
``ProtocolError`` raised, ``data_to_send()`` a sequence of well-formed frames whose header
blocks decode to what was sent, no negative window, its buffered bytes within their bounds.

HPACK mode (``--hpack``): the first byte chooses the decoder's table size and header-list
bound, the rest is header blocks (each preceded by its length byte) decoded by one
``HeaderDecoder``: nothing but ``HpackError`` raised, the bound and the table size respected.

    .venv/bin/python fuzz/http2_engine.py -max_len=4096 -timeout=5 fuzz/corpus-h2 fuzz/seeds-h2
    .venv/bin/python fuzz/http2_engine.py --hpack -max_len=1024 fuzz/corpus-hpack

``--seeds DIR`` writes the seed corpus: the bytes h2's client sends for a few requests. See
fuzz/README.md.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    from prefork.http2.engine import ServerConnection
    from prefork.http2.errors import ProtocolError
    from prefork.http2.events import DataReceived, RequestReceived, StreamReset
    from prefork.http2.frames import (
        CONTINUATION,
        DATA,
        END_HEADERS,
        GOAWAY,
        HEADER_SIZE,
        HEADERS,
        LARGEST_MAX_FRAME_SIZE,
        PING,
        PREFACE,
        RST_STREAM,
        SETTINGS,
        WINDOW_UPDATE,
        read_header,
    )
    from prefork.http2.hpack import HeaderDecoder, HpackError
    from prefork.http2.limits import Http2Limits

# a small header-list bound so that the bound is reached often
LIMITS = Http2Limits(max_concurrent_streams=10, max_header_list_size=4096)
RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"text/plain"),
                    (b"x-filler", b"y" * 300)]
BODY = b"x" * 70000  # more than a stream's first window


def check_output(out: bytes, peer_decoder: HeaderDecoder, sent: list[list[tuple[bytes, bytes]]],
                 block: list[bytes]) -> None:
    """``out`` is whole frames, each of the right shape; the header blocks in it decode, in
    order, to the lists in ``sent`` (which are taken off it)."""
    offset = 0
    while offset < len(out):
        assert len(out) - offset >= HEADER_SIZE, out[offset:]
        length, frame_type, flags, stream_id = read_header(out, offset)
        assert length <= LARGEST_MAX_FRAME_SIZE
        start = offset + HEADER_SIZE
        offset = start + length
        assert offset <= len(out), "a frame cut short"
        payload = out[start:offset]
        if block and frame_type != CONTINUATION:
            raise AssertionError("a header block left open")
        if frame_type in (SETTINGS, PING, GOAWAY):
            assert stream_id == 0, (frame_type, stream_id)
        elif frame_type in (DATA, HEADERS, RST_STREAM, CONTINUATION):
            assert stream_id, frame_type
        if frame_type == RST_STREAM:
            assert length == 4
        elif frame_type == WINDOW_UPDATE:
            assert length == 4
            assert 1 <= int.from_bytes(payload, "big") <= 2**31 - 1
        elif frame_type == PING:
            assert length == 8
        elif frame_type == SETTINGS:
            assert length % 6 == 0
        elif frame_type in (HEADERS, CONTINUATION):
            block.append(payload)
            if flags & END_HEADERS:
                headers = peer_decoder.decode(b"".join(block))
                block.clear()
                assert sent and headers == sent.pop(0), headers
        elif frame_type == GOAWAY:
            assert length >= 8
        else:
            assert frame_type == DATA, frame_type


def check_state(conn: ServerConnection, step: int) -> None:
    assert conn.send_window >= 0, conn.send_window
    assert 0 <= conn.receive_window <= 2**31 - 1, conn.receive_window
    for stream in conn.streams.values():
        assert stream.receive_window >= 0, stream.receive_window
        assert stream.send_window <= 2**31 - 1, stream.send_window
    kept = sum(len(piece) for piece in conn.pieces)
    assert kept <= HEADER_SIZE + conn.max_inbound_frame_size + step + len(PREFACE), kept
    assert sum(len(fragment) for fragment in conn.block_fragments) <= conn.block_limit


def serve(data: bytes, step: int) -> None:
    conn = ServerConnection(LIMITS)
    conn.initiate_connection()
    peer_decoder = HeaderDecoder(2**32, 2**32)
    sent: list[list[tuple[bytes, bytes]]] = []
    block: list[bytes] = []
    unanswered: list[int] = []
    sending: dict[int, int] = {}  # stream id -> body bytes still to send
    pieces = [data[i:i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        try:
            events = conn.receive_data(piece)
        except ProtocolError:
            check_output(conn.data_to_send(), peer_decoder, sent, block)
            assert conn.closed
            assert conn.receive_data(b"\0" * 9) == []
            return
        for event in events:
            if isinstance(event, RequestReceived):
                unanswered.append(event.stream_id)
            elif isinstance(event, DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamReset):
                sending.pop(event.stream_id, None)
        for stream_id in unanswered:
            if stream_id in conn.streams:  # a stream reset since is not answered
                conn.send_headers(stream_id, RESPONSE_HEADERS)
                sent.append(RESPONSE_HEADERS)
                sending[stream_id] = len(BODY)
        unanswered.clear()
        for stream_id, left in list(sending.items()):
            if stream_id not in conn.streams:
                del sending[stream_id]
                continue
            window = conn.local_flow_control_window(stream_id)
            size = min(window, left)
            if size <= 0 < left:  # the window is shut (or below zero): wait for an update
                continue
            conn.send_data(stream_id, BODY[:size], end_stream=size == left)
            if size == left:
                del sending[stream_id]
            else:
                sending[stream_id] = left - size
        check_output(conn.data_to_send(), peer_decoder, sent, block)
        check_state(conn, step)


def decode_blocks(data: bytes) -> None:
    control, data = data[0], data[1:]
    table_size = (control & 0x0F) * 256
    list_bound = ((control >> 4) + 1) * 64
    decoder = HeaderDecoder(table_size, list_bound)
    offset = 0
    while offset < len(data):
        size = data[offset]
        block = data[offset + 1:offset + 1 + size]
        offset += 1 + size
        try:
            headers = decoder.decode(block)
        except HpackError:
            return
        assert sum(len(name) + len(value) + 32 for name, value in headers) <= list_bound
        assert decoder._table_size <= decoder._table_limit <= table_size


def test_engine(data: bytes) -> None:
    if not data:
        return
    control, data = data[0], data[1:]
    if control & 1:
        data = PREFACE + data
    serve(data, (control >> 1) + 1)


def test_hpack(data: bytes) -> None:
    if data:
        decode_blocks(data)


def write_seeds(directory: str) -> None:
    """What h2's client sends for a few requests, as inputs of the engine mode (control byte:
    no preface put in front, the pieces of various sizes)."""
    import h2.config
    import h2.connection

    def client() -> h2.connection.H2Connection:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        return conn

    request = [(":method", "POST"), (":path", "/upload?x=1"), (":scheme", "https"),
               (":authority", "example.com"), ("content-type", "text/plain"),
               ("user-agent", "seed/1.0")]
    seeds = {}
    c = client()
    c.send_headers(1, [(":method", "GET"), *request[1:4]], end_stream=True)
    c.send_headers(3, request, end_stream=False)
    c.send_data(3, b"hello body", end_stream=True)
    seeds["requests"] = c.data_to_send()
    c = client()
    c.send_headers(1, request)
    c.send_data(1, b"a" * 5000, pad_length=17)
    c.send_headers(1, [("x-trailer", "done")], end_stream=True)
    seeds["trailers"] = c.data_to_send()
    c = client()
    c.max_outbound_frame_size = 200  # a block in several frames, within LIMITS' list bound
    big = request + [(f"x-h{i}", "v" * 100) for i in range(20)]
    c.send_headers(1, big, end_stream=True)
    seeds["continuation"] = c.data_to_send()
    c = client()
    c.update_settings({1: 0, 4: 1000, 5: 20000})
    c.ping(b"12345678")
    c.increment_flow_control_window(100000)
    c.send_headers(1, request, end_stream=True)
    c.prioritize(1, weight=20, depends_on=0)
    c.reset_stream(1)
    c.close_connection()
    seeds["settings-ping-reset"] = c.data_to_send()
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        for control in (0, 14, 255):
            with open(os.path.join(directory, f"{name}-{control}"), "wb") as f:
                f.write(bytes([control]) + data)


def main() -> None:
    argv = list(sys.argv)
    if "--seeds" in argv:
        write_seeds(argv[argv.index("--seeds") + 1])
        return
    target = test_engine
    if "--hpack" in argv:
        argv.remove("--hpack")
        target = test_hpack
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

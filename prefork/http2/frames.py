"""HTTP/2 frames on the wire (RFC 9113 §4 and §6): the numbers that name them and the bytes that
carry them.

Reading: :func:`read_header` takes the nine header bytes at an offset of the connection's
buffer without slicing it, :func:`read_settings` a SETTINGS payload's pairs; what each payload
means is ``prefork.http2.engine``'s. Writing: one ``append_*`` function per frame type, each
appending the whole frame to the caller's ``bytearray``, so that a burst of frames becomes one
buffer and one write. No I/O, no objects per frame; compiled with mypyc (``setup.py``).
"""

from __future__ import annotations

from typing import Final

# The error codes (RFC 9113 §7) live in prefork.http2.errors, which the session reads too; they
# are named here as well, beside the frames' other numbers.
from prefork.http2.errors import CANCEL as CANCEL
from prefork.http2.errors import COMPRESSION_ERROR as COMPRESSION_ERROR
from prefork.http2.errors import CONNECT_ERROR as CONNECT_ERROR
from prefork.http2.errors import ENHANCE_YOUR_CALM as ENHANCE_YOUR_CALM
from prefork.http2.errors import FLOW_CONTROL_ERROR as FLOW_CONTROL_ERROR
from prefork.http2.errors import FRAME_SIZE_ERROR as FRAME_SIZE_ERROR
from prefork.http2.errors import HTTP_1_1_REQUIRED as HTTP_1_1_REQUIRED
from prefork.http2.errors import INADEQUATE_SECURITY as INADEQUATE_SECURITY
from prefork.http2.errors import INTERNAL_ERROR as INTERNAL_ERROR
from prefork.http2.errors import NO_ERROR as NO_ERROR
from prefork.http2.errors import PROTOCOL_ERROR as PROTOCOL_ERROR
from prefork.http2.errors import REFUSED_STREAM as REFUSED_STREAM
from prefork.http2.errors import SETTINGS_TIMEOUT as SETTINGS_TIMEOUT
from prefork.http2.errors import STREAM_CLOSED as STREAM_CLOSED

# The client's first 24 bytes (RFC 9113 §3.4).
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_SIZE: Final = 9

# Frame types (§6).
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# Flags (§6): END_STREAM and ACK share a bit, on different frame types.
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# Setting identifiers (§6.5.2).
HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6
ENABLE_CONNECT_PROTOCOL: Final = 0x8

# Bounds (§4.2, §6.9.1).
DEFAULT_MAX_FRAME_SIZE: Final = 16384
LARGEST_MAX_FRAME_SIZE: Final = 2**24 - 1
DEFAULT_WINDOW: Final = 65535
LARGEST_WINDOW: Final = 2**31 - 1
STREAM_ID_MASK: Final = 0x7FFFFFFF


def read_header(buffer: bytes, offset: int) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of the frame whose header starts at ``offset``; the
    caller has checked that nine bytes are there. The reserved bit is dropped."""
    return ((buffer[offset] << 16) | (buffer[offset + 1] << 8) | buffer[offset + 2],
            buffer[offset + 3], buffer[offset + 4],
            ((buffer[offset + 5] & 0x7F) << 24) | (buffer[offset + 6] << 16)
            | (buffer[offset + 7] << 8) | buffer[offset + 8])


def read_settings(payload: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """The (identifier, value) pairs of a SETTINGS payload whose length is a multiple of 6."""
    pairs = []
    for offset in range(start, end, 6):
        pairs.append(((payload[offset] << 8) | payload[offset + 1],
                      int.from_bytes(payload[offset + 2:offset + 6], "big")))
    return pairs


def append_header(out: bytearray, length: int, frame_type: int, flags: int,
                  stream_id: int) -> None:
    out += ((length << 16) | (frame_type << 8) | flags).to_bytes(5, "big")
    out += stream_id.to_bytes(4, "big")


def append_data(out: bytearray, stream_id: int, data: bytes, end_stream: bool) -> None:
    """One DATA frame; the caller keeps ``data`` within the peer's frame size."""
    append_header(out, len(data), DATA, END_STREAM if end_stream else 0, stream_id)
    out += data


def append_headers(out: bytearray, stream_id: int, block: bytes, end_stream: bool,
                   max_frame_size: int) -> None:
    """HEADERS carrying ``block``, followed by CONTINUATION frames where it is larger than
    ``max_frame_size`` (§6.10)."""
    flags = END_STREAM if end_stream else 0
    size = len(block)
    if size <= max_frame_size:
        append_header(out, size, HEADERS, flags | END_HEADERS, stream_id)
        out += block
        return
    view = memoryview(block)
    append_header(out, max_frame_size, HEADERS, flags, stream_id)
    out += view[:max_frame_size]
    offset = max_frame_size
    while offset < size:
        piece = min(max_frame_size, size - offset)
        last = offset + piece == size
        append_header(out, piece, CONTINUATION, END_HEADERS if last else 0, stream_id)
        out += view[offset:offset + piece]
        offset += piece


def append_priority(out: bytearray, stream_id: int, depends_on: int, weight: int,
                    exclusive: bool = False) -> None:
    """PRIORITY (§6.3, deprecated by RFC 9113 but still legal); ``weight`` is 1-256."""
    append_header(out, 5, PRIORITY, 0, stream_id)
    out += (depends_on | (0x80000000 if exclusive else 0)).to_bytes(4, "big")
    out.append(weight - 1)


def append_rst_stream(out: bytearray, stream_id: int, error_code: int) -> None:
    append_header(out, 4, RST_STREAM, 0, stream_id)
    out += error_code.to_bytes(4, "big")


def append_settings(out: bytearray, settings: list[tuple[int, int]]) -> None:
    append_header(out, 6 * len(settings), SETTINGS, 0, 0)
    for identifier, value in settings:
        out += ((identifier << 32) | value).to_bytes(6, "big")


def append_settings_ack(out: bytearray) -> None:
    append_header(out, 0, SETTINGS, ACK, 0)


def append_push_promise(out: bytearray, stream_id: int, promised_stream_id: int,
                        block: bytes) -> None:
    """PUSH_PROMISE, which a server never sends here (SETTINGS_ENABLE_PUSH is the client's to
    give, and prefork pushes nothing); the frame is written for completeness and tests."""
    append_header(out, 4 + len(block), PUSH_PROMISE, END_HEADERS, stream_id)
    out += promised_stream_id.to_bytes(4, "big")
    out += block


def append_ping(out: bytearray, data: bytes, ack: bool) -> None:
    append_header(out, 8, PING, ACK if ack else 0, 0)
    out += data


def append_goaway(out: bytearray, last_stream_id: int, error_code: int,
                  additional_data: bytes = b"") -> None:
    append_header(out, 8 + len(additional_data), GOAWAY, 0, 0)
    out += ((last_stream_id << 32) | error_code).to_bytes(8, "big")
    out += additional_data


def append_window_update(out: bytearray, stream_id: int, increment: int) -> None:
    append_header(out, 4, WINDOW_UPDATE, 0, stream_id)
    out += increment.to_bytes(4, "big")


def append_continuation(out: bytearray, stream_id: int, fragment: bytes,
                        end_headers: bool) -> None:
    append_header(out, len(fragment), CONTINUATION, END_HEADERS if end_headers else 0,
                  stream_id)
    out += fragment

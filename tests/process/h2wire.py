"""HTTP/2 on the wire for the tests: frames a client library would refuse to send, read back.

``RawConnection`` is a blocking socket that speaks HTTP/2 frame by frame: it sends whatever bytes
a test builds (``frame`` packs any type, flags, stream and payload; hyperframe's classes build the
well-formed ones, hpack encodes header blocks) and reads the server's frames back with
hyperframe, so a test can assert on each GOAWAY, RST_STREAM and SETTINGS that came back.
``fetch`` is the well-behaved client beside it (h2's own client side), and ``WorkerUsage`` reads
a worker's CPU seconds and memory from /proc, so a test can show an attack stayed bounded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# Flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Error codes (RFC 9113 §7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)
# Settings (RFC 9113 §6.5.2)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

ERROR_NAMES = {
    NO_ERROR: "NO_ERROR", PROTOCOL_ERROR: "PROTOCOL_ERROR", INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR", SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
    STREAM_CLOSED: "STREAM_CLOSED", FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR",
    REFUSED_STREAM: "REFUSED_STREAM", CANCEL: "CANCEL", COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR", ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY", HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame, exactly as given: no check of the type, flags, stream or length."""
    length = len(payload)
    return struct.pack(">BHBBL", length >> 16, length & 0xFFFF, kind, flags,
                       stream_id & 0xFFFFFFFF) + payload


def settings(values: dict[int, int] | None = None) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", key, value)
                                          for key, value in (values or {}).items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">L", increment))


def rst_stream(stream_id: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">L", code))


def request_headers(path: str = "/", method: str = "GET", authority: str = "localhost",
                    extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":path", path),
            (":authority", authority), *extra]


def error_name(code: int | None) -> str:
    return "none" if code is None else ERROR_NAMES.get(code, f"0x{code:x}")


@dataclass
class Response:
    """What came back on one stream."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if one came

    @property
    def status(self) -> int | None:
        for name, value in self.headers:
            if name == ":status":
                return int(value)
        return None


class RawConnection:
    """A client socket that sends raw frames and parses what the server sends back.

    ``handshake`` sends the preface and an empty SETTINGS (or the given values), reads the
    server's SETTINGS and acknowledges them, so a test starts from an open connection; every
    frame read is kept in ``frames``, and ``goaway`` / ``closed`` say how the server ended it.
    """

    def __init__(self, port: int, *, host: str = "127.0.0.1", receive_buffer: int | None = None,
                 timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.connect((host, port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock: socket.socket = sock
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.frames: list[Frame] = []
        self.responses: dict[int, Response] = {}
        self.server_settings: dict[int, int] = {}
        self.goaway: GoAwayFrame | None = None
        self.closed = False
        self._buffer = b""
        self._header_block: tuple[int, bytes, bool] | None = None

    # -- sending ----------------------------------------------------------------------------

    def handshake(self, values: dict[int, int] | None = None, *, ack: bool = True) -> None:
        self.sock.sendall(PREFACE + settings(values))
        first = self.read_frame()
        assert isinstance(first, SettingsFrame) and "ACK" not in first.flags, first
        if ack:
            self.sock.sendall(frame(SETTINGS, ACK, 0))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def header_block(self, headers: Iterable[tuple[str, str]], *, huffman: bool = True) -> bytes:
        return self.encoder.encode(list(headers), huffman=huffman)

    def headers_frame(self, stream_id: int, headers: Iterable[tuple[str, str]], *,
                      end_stream: bool = True, end_headers: bool = True) -> bytes:
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, stream_id, self.header_block(headers))

    def request(self, stream_id: int, path: str = "/", *, method: str = "GET",
                body: bytes | None = None,
                extra: Iterable[tuple[str, str]] = ()) -> None:
        """Send one request's HEADERS (and DATA, if ``body``)."""
        headers = request_headers(path, method, extra=extra)
        self.send(self.headers_frame(stream_id, headers, end_stream=body is None))
        if body is not None:
            self.send(frame(DATA, END_STREAM, stream_id, body))

    # -- receiving --------------------------------------------------------------------------

    def _fill(self, timeout: float) -> bool:
        """Read more bytes; False once the server has closed (or reset) the connection."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._buffer += data
        return True

    def read_frame(self, timeout: float = 10.0) -> Frame | None:
        """The next frame; None when the connection closed. socket.timeout past ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self._buffer) >= 9:
                parsed, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
                if len(self._buffer) >= 9 + length:
                    parsed.parse_body(memoryview(self._buffer[9:9 + length]))
                    self._buffer = self._buffer[9 + length:]
                    self._note(parsed)
                    return parsed
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no whole frame came")
            if not self._fill(remaining):
                return None

    def _note(self, received: Frame) -> None:
        self.frames.append(received)
        if isinstance(received, GoAwayFrame):
            self.goaway = received
        elif isinstance(received, SettingsFrame) and "ACK" not in received.flags:
            self.server_settings.update(received.settings)
        elif isinstance(received, RstStreamFrame):
            self.responses.setdefault(received.stream_id, Response()).reset = \
                received.error_code
        elif isinstance(received, HeadersFrame | ContinuationFrame):
            self._headers(received)
        elif isinstance(received, DataFrame):
            response = self.responses.setdefault(received.stream_id, Response())
            response.body += received.data
            response.ended = response.ended or "END_STREAM" in received.flags

    def _headers(self, received: HeadersFrame | ContinuationFrame) -> None:
        if isinstance(received, HeadersFrame):
            self._header_block = (received.stream_id, received.data,
                                  "END_STREAM" in received.flags)
        elif self._header_block is not None:
            stream_id, block, ends = self._header_block
            self._header_block = (stream_id, block + received.data, ends)
        if "END_HEADERS" not in received.flags or self._header_block is None:
            return
        stream_id, block, ends = self._header_block
        self._header_block = None
        decoded = [(bytes(name).decode("latin-1") if isinstance(name, bytes) else name,
                    bytes(value).decode("latin-1") if isinstance(value, bytes) else value)
                   for name, value in self.decoder.decode(block)]
        response = self.responses.setdefault(stream_id, Response())
        if response.headers:
            response.trailers = decoded
        else:
            response.headers = decoded
        response.ended = response.ended or ends

    def read_until(self, done: Callable[[RawConnection], bool], timeout: float = 10.0) -> bool:
        """Read frames until ``done(self)`` or the connection closes; whether ``done`` held.

        PINGs are answered and DATA is credited back, as a live client does; a timeout is not an
        error (the result says whether the condition came)."""
        deadline = time.monotonic() + timeout
        while not done(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                received = self.read_frame(remaining)
            except TimeoutError:
                return done(self)
            if received is None:
                return done(self)
            if isinstance(received, PingFrame) and "ACK" not in received.flags:
                with contextlib.suppress(OSError):
                    self.send(frame(PING, ACK, 0, received.opaque_data))
            elif isinstance(received, DataFrame) and received.flow_controlled_length:
                with contextlib.suppress(OSError):
                    self.send(window_update(0, received.flow_controlled_length)
                              + window_update(received.stream_id,
                                              received.flow_controlled_length))
        return True

    def read_until_closed(self, timeout: float = 10.0) -> bool:
        """Read everything until the server closes; whether it did within ``timeout``."""
        return self.read_until(lambda connection: connection.closed, timeout)

    def response(self, stream_id: int, timeout: float = 10.0) -> Response:
        """Wait for the stream's end (or its reset, or the connection's)."""
        def finished(connection: RawConnection) -> bool:
            response = connection.responses.get(stream_id)
            return connection.closed or (response is not None
                                         and (response.ended or response.reset is not None))
        self.read_until(finished, timeout)
        return self.responses.get(stream_id, Response())

    def resets(self) -> dict[int, int]:
        """Stream id -> error code of every RST_STREAM received."""
        return {frame.stream_id: frame.error_code for frame in self.frames
                if isinstance(frame, RstStreamFrame)}

    def goaway_code(self) -> int | None:
        return None if self.goaway is None else self.goaway.error_code

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def fetch(port: int, path: str = "/", *, method: str = "GET", body: bytes = b"",
          timeout: float = 10.0, streams: int = 1,
          tls: ssl.SSLContext | None = None) -> list[tuple[int, bytes]]:
    """``streams`` requests on one prior-knowledge connection, by h2's client side: each
    stream's (status, body), in order."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    stream_ids = []
    for _ in range(streams):
        stream_id = connection.get_next_available_stream_id()
        stream_ids.append(stream_id)
        connection.send_headers(stream_id, request_headers(path, method), end_stream=not body)
        if body:
            connection.send_data(stream_id, body, end_stream=True)
    statuses: dict[int, int] = {}
    bodies: dict[int, bytearray] = {stream_id: bytearray() for stream_id in stream_ids}
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    with sock:
        sock.sendall(connection.data_to_send())
        while len(ended) < len(stream_ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(stream_ids) - len(ended)} streams unanswered")
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed before every stream ended")
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    statuses[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length,
                                                         event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionError(f"stream {event.stream_id} reset: "
                                          f"{error_name(event.error_code)}")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise ConnectionError(f"GOAWAY {error_name(event.error_code)}")
            sock.sendall(connection.data_to_send())
        connection.close_connection()
        with contextlib.suppress(OSError):
            sock.sendall(connection.data_to_send())
    return [(statuses.get(stream_id, 0), bytes(bodies[stream_id])) for stream_id in stream_ids]


class WorkerUsage:
    """A process's CPU seconds and memory, read from /proc at the start and on demand."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # "5" resets the peak (VmHWM) to the present size, so the peak is this attack's alone
        with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        self.cpu_at_start = self.cpu_seconds()
        self.rss_at_start = self.rss_mb()

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for {self.pid}")

    def peak_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmHWM for {self.pid}")

    def cpu_used(self) -> float:
        return self.cpu_seconds() - self.cpu_at_start

    def grown_mb(self) -> float:
        """Peak memory over the memory at the start: what the attack cost at its worst."""
        return self.peak_mb() - self.rss_at_start

    def summary(self) -> str:
        return (f"worker CPU {self.cpu_used():.2f} s, RSS {self.rss_at_start:.1f} MB -> "
                f"{self.rss_mb():.1f} MB (peak {self.peak_mb():.1f} MB)")

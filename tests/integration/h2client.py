"""A raw-socket HTTP/2 client on ``h2``'s client side, for tests: it writes what the test asks
(requests, bodies, resets, pings, windows) and collects every stream's response.

The test drives the client explicitly: nothing is acknowledged or read unless asked (``auto_ack``
acknowledges received body bytes as they arrive, as an ordinary client does).

GOAWAY frames are taken out before ``h2`` sees them (:attr:`H2Client.goaways`): ``h2`` closes its
state at the first one and would refuse the rest of the streams a draining server still
answers, which real clients (curl, browsers) read.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

import h2.events
from h2.config import H2Configuration
from h2.connection import H2Connection
from hyperframe.frame import GoAwayFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class GoAway:
    last_stream_id: int
    error_code: int


@dataclass
class StreamReply:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[int] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset it

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class H2Client:
    """One HTTP/2 connection from the client side. ``sock``: an already connected (or TLS)
    socket; ``upgrade``: the connection was upgraded from HTTP/1.1 (stream 1 is open)."""

    def __init__(self, port: int = 0, *, sock: socket.socket | ssl.SSLSocket | None = None,
                 timeout: float = 5.0, auto_ack: bool = True,
                 settings: dict[int, int] | None = None, upgrade: bool = False) -> None:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        self.sock = sock
        self.auto_ack = auto_ack
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        if settings:
            self.h2.local_settings.update(settings)
        self.replies: dict[int, StreamReply] = {}
        self.goaways: list[GoAway] = []
        self.inbound = b""  # bytes of an incomplete frame
        self.closed = False
        self.events: list[h2.events.Event] = []
        if upgrade:
            self.settings_header = self.h2.initiate_upgrade_connection()
            self.replies[1] = StreamReply()
        else:
            self.h2.initiate_connection()
            self.flush()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: str = "GET", path: str = "/", body: bytes = b"",
                headers: list[tuple[str, str]] | None = None, end: bool = True,
                authority: str = "test", scheme: str = "http") -> int:
        stream_id = self.h2.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":path", path.encode()),
                  (b":scheme", scheme.encode()), (b":authority", authority.encode()),
                  *((n.lower().encode(), v.encode()) for n, v in headers or [])]
        self.replies[stream_id] = StreamReply()
        self.h2.send_headers(stream_id, fields, end_stream=end and not body)
        self.flush()
        if body:
            self.send_all(stream_id, body, end)
        return stream_id

    def send_all(self, stream_id: int, data: bytes, end: bool = True) -> None:
        """Send ``data`` as the windows allow, reading the server's WINDOW_UPDATEs between."""
        view = memoryview(data)
        while True:
            window = min(self.h2.local_flow_control_window(stream_id),
                         self.h2.max_outbound_frame_size)
            if window <= 0:
                if not self.read():
                    raise ConnectionError("connection closed while sending a body")
                continue
            piece, view = view[:window], view[window:]
            last = end and not view
            self.h2.send_data(stream_id, bytes(piece), end_stream=last)
            self.flush()
            if not view:
                if end and not last:
                    self.h2.end_stream(stream_id)
                    self.flush()
                return

    def send_body(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self.h2.send_data(stream_id, data, end_stream=end)
        self.flush()

    def reset(self, stream_id: int, code: int = 0x8) -> None:
        self.h2.reset_stream(stream_id, code)
        self.flush()

    def read(self) -> bool:
        """Read once from the socket and take its events; False at EOF."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.take(data)
        return True

    @property
    def goaway(self) -> GoAway | None:
        return self.goaways[-1] if self.goaways else None

    def take(self, data: bytes) -> None:
        buffer = self.inbound + data
        passed = []
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            frame, buffer = buffer[:9 + length], buffer[9 + length:]
            if frame[3] == 0x7:  # GOAWAY
                goaway = GoAwayFrame(0)
                goaway.parse_body(memoryview(frame[9:]))
                self.goaways.append(GoAway(goaway.last_stream_id, goaway.error_code))
            else:
                passed.append(frame)
        self.inbound = buffer
        for event in self.h2.receive_data(b"".join(passed)):
            self.events.append(event)
            stream_id = getattr(event, "stream_id", None)
            reply = self.replies.get(stream_id) if stream_id else None
            if isinstance(event, h2.events.InformationalResponseReceived) and reply:
                reply.informational.append(int(dict(event.headers)[b":status"]))
            elif isinstance(event, h2.events.ResponseReceived) and reply:
                fields = list(event.headers)
                reply.status = int(dict(fields)[b":status"])
                reply.headers = [(n, v) for n, v in fields if not n.startswith(b":")]
            elif isinstance(event, h2.events.DataReceived):
                if reply:
                    reply.body += event.data
                if self.auto_ack and event.flow_controlled_length:
                    self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived) and reply:
                reply.trailers = list(event.headers)
            elif isinstance(event, h2.events.StreamEnded) and reply:
                reply.ended = True
            elif isinstance(event, h2.events.StreamReset) and reply:
                reply.reset = int(event.error_code)
        self.flush()

    def wait(self, stream_id: int) -> StreamReply:
        """Read until ``stream_id`` ended or was reset."""
        reply = self.replies[stream_id]
        while not reply.ended and reply.reset is None:
            if not self.read():
                raise ConnectionError(f"connection closed before stream {stream_id} ended")
        return reply

    def get(self, path: str = "/", **kwargs: object) -> StreamReply:
        return self.wait(self.request("GET", path, **kwargs))  # type: ignore[arg-type]

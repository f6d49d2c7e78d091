"""The known HTTP/2 attacks against a real worker, with raw frames on real sockets.

Each attack runs against one forked worker while a well-behaved client keeps asking for a page
on connections of its own. Each test shows three things: the worker's CPU seconds and memory
(read from /proc) stay bounded during the attack, the well-behaved client is served during it
and after it, and the attacker is cut off (what came back to it is asserted: the GOAWAY and its
error code, the RST_STREAMs, the closed socket). The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from prefork.server import Server
from prefork.testing import running_server, wait_until
from tests.apps.h2apps import HELLO
from tests.process.h2wire import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST_SIZE,
    PING,
    PRIORITY,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RawConnection,
    WorkerUsage,
    error_name,
    fetch,
    frame,
    request_headers,
    rst_stream,
    settings,
    window_update,
)

pytestmark = pytest.mark.process

APP = "tests.apps.h2apps:asgi"
TCP_INFO_STATE_CLOSED = {7, 8}  # TCP_CLOSE, TCP_CLOSE_WAIT: the server's end is gone


@contextlib.contextmanager
def h2_server(**settings: object) -> Iterator[tuple[Server, WorkerUsage]]:
    """One worker serving HTTP/2 (cleartext by prior knowledge), its usage measured from now."""
    settings.setdefault("send_timeout", 3)
    with running_server(APP, workers=1, http2=True, **settings) as server:
        [worker] = server.worker_pids()
        assert fetch(server.port) == [(200, HELLO)]
        yield server, WorkerUsage(worker)
        # the worker that was attacked is the one that serves afterwards: it never died
        assert server.worker_pids() == [worker]
        assert fetch(server.port) == [(200, HELLO)]


class Bystander:
    """A well-behaved client asking for ``/`` on a fresh connection every 0.1 s, in a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.served: list[float] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if fetch(self.port, timeout=5) == [(200, HELLO)]:
                    self.served.append(time.monotonic())
                else:
                    self.failed.append("a wrong answer")
            except (OSError, ConnectionError, TimeoutError) as error:
                self.failed.append(repr(error))
            self._stop.wait(0.1)

    def __enter__(self) -> Bystander:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def served_since(self, moment: float) -> int:
        return sum(1 for served in self.served if served >= moment)

    def check(self, since: float) -> None:
        """Served at least once from ``since`` (during the attack or, when it was over in a
        moment, just after), and never refused."""
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.served_since(since) >= 1, timeout=10)
        assert self.served_since(since) >= 1 and not self.failed, self.failed


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _send_until_cut(attacker: RawConnection, batches: Iterator[bytes],
                    timeout: float = 3.0) -> tuple[int, str]:
    """Send batch after batch until they run out, the server closes, or it stops reading
    (a send blocked for ``timeout``): (bytes sent, how the sending ended)."""
    attacker.sock.settimeout(timeout)
    sent = 0
    for batch in batches:
        try:
            attacker.sock.sendall(batch)
        except TimeoutError:
            return sent, "the server stopped reading"
        except OSError as error:
            return sent, f"the server closed ({type(error).__name__})"
        sent += len(batch)
    return sent, "everything was sent"


def _report(name: str, usage: WorkerUsage, attacker: RawConnection, detail: str) -> None:
    print(f"\n{name}: {detail}; {usage.summary()}; the attacker got GOAWAY "
          f"{error_name(attacker.goaway_code())}, {len(attacker.resets())} RST_STREAM, "
          f"closed: {attacker.closed}")


@pytest.mark.timeout(120)
def test_rapid_reset_is_cut_off() -> None:
    """CVE-2023-44487: each stream opened and cancelled at once, so a server that counts only
    open streams never sees more than one while it starts and cancels the app without end."""
    with h2_server() as (server, usage), Bystander(server.port) as bystander, \
            RawConnection(server.port) as attacker:
        attacker.handshake()
        headers = request_headers("/hold")
        attacker.send(attacker.headers_frame(1, headers) + rst_stream(1))
        indexed = attacker.header_block(headers)  # now wholly indexed: the same bytes each time
        streams = 100_000

        def batches() -> Iterator[bytes]:
            for first in range(3, 2 * streams, 200):
                yield b"".join(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, indexed)
                               + rst_stream(stream_id)
                               for stream_id in range(first, first + 200, 2))

        started = time.monotonic()
        sent, ended = _send_until_cut(attacker, batches())
        attacker.read_until_closed(timeout=10)
        # the GOAWAY names the last stream the server took up: how far the attack got
        processed = (attacker.goaway.last_stream_id + 1) // 2 if attacker.goaway else streams
        _report("rapid reset", usage, attacker,
                f"{sent // (9 + len(indexed) + 13)} streams opened and reset until: {ended}; "
                f"{processed} taken up by the server")
        assert attacker.goaway_code() == ENHANCE_YOUR_CALM, attacker.frames[-5:]
        assert attacker.closed
        assert processed < 2000
        assert usage.cpu_used() < 2.0
        assert usage.grown_mb() < 30
        # every cancelled app was told its client left
        wait_until(lambda: fetch(server.port, "/held")[0][1].startswith(b"0 "), timeout=10)
        bystander.check(started)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("piece", [16384, 0], ids=["16KiB-pieces", "empty-pieces"])
def test_continuation_flood_is_cut_off(piece: int) -> None:
    """CVE-2024-27316: a header block that never ends (CONTINUATION without END_HEADERS), in
    full frames (memory) or empty ones (CPU: a frame each 9 bytes)."""
    with h2_server() as (server, usage), Bystander(server.port) as bystander, \
            RawConnection(server.port) as attacker:
        attacker.handshake()
        block = attacker.header_block(request_headers("/"))
        attacker.send(frame(HEADERS, END_STREAM, 1, block))
        filler = b"\x00" * piece
        total = 256 * 1024 * 1024

        def batches() -> Iterator[bytes]:
            batch = frame(CONTINUATION, 0, 1, filler) * max(1, 262144 // (9 + piece))
            for _ in range(total // len(batch)):
                yield batch

        started = time.monotonic()
        sent, ended = _send_until_cut(attacker, batches())
        attacker.read_until_closed(timeout=10)
        _report(f"CONTINUATION flood ({piece}-byte frames)", usage, attacker,
                f"{sent / 1048576:.1f} MiB sent before: {ended}")
        assert attacker.goaway_code() in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM), \
            attacker.frames[-5:]
        assert attacker.closed
        assert sent < total
        assert usage.cpu_used() < 2.0
        assert usage.grown_mb() < 30
        assert 1 not in attacker.responses or attacker.responses[1].status is None
        bystander.check(started)


def _hpack_bomb(entry_size: int, references: int) -> bytes:
    """One literal field indexed into the dynamic table, then referenced again and again."""
    name, value = b"x-bomb", b"a" * (entry_size - 32 - 6)
    literal = b"\x40" + bytes([len(name)]) + name + _hpack_length(len(value)) + value
    return literal + b"\xbe" * references  # 0x80 | 62: the first entry of the dynamic table


def _hpack_length(length: int) -> bytes:
    """An HPACK string length, not Huffman-coded (7-bit prefix integer)."""
    if length < 127:
        return bytes([length])
    out, length = bytearray([127]), length - 127
    while length >= 128:
        out.append(length % 128 + 128)
        length //= 128
    out.append(length)
    return bytes(out)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("frames", [1, 64], ids=["one-frame", "64-frames"])
def test_hpack_bomb_is_refused(frames: int) -> None:
    """A header block of 16 KiB a frame that decompresses into 4 KiB per byte: 48 MiB from one
    frame, over 3 GiB from 64. Decoding must stop at the header list limit."""
    with h2_server() as (server, usage), Bystander(server.port) as bystander, \
            RawConnection(server.port) as attacker:
        attacker.handshake()
        pseudo = attacker.header_block(request_headers("/"))
        first = pseudo + _hpack_bomb(4096, 16384 - len(pseudo) - 4200)
        pieces = [frame(HEADERS, END_STREAM | (END_HEADERS if frames == 1 else 0), 1, first)]
        for index in range(1, frames):
            flags = END_HEADERS if index == frames - 1 else 0
            pieces.append(frame(CONTINUATION, flags, 1, b"\xbe" * 16384))
        decompressed = (sum(len(piece) - 9 for piece in pieces) - len(pseudo)) * 4096
        started = time.monotonic()
        sent, ended = _send_until_cut(attacker, iter(pieces))
        attacker.read_until_closed(timeout=10)
        _report(f"HPACK bomb in {frames} frame(s)", usage, attacker,
                f"{sent / 1024:.0f} KiB that decompress into {decompressed / 1048576:.0f} MiB, "
                f"sent until: {ended}")
        response = attacker.responses.get(1)
        refused = response is not None and (response.status == 431
                                            or response.reset is not None)
        assert refused or attacker.goaway_code() in (ENHANCE_YOUR_CALM, PROTOCOL_ERROR), \
            attacker.frames[-5:]
        assert response is None or response.status != 200
        assert usage.cpu_used() < 2.0
        assert usage.grown_mb() < 30
        bystander.check(started)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_control_frame_flood_without_reading_is_bounded(kind: str) -> None:
    """SETTINGS or PING frames, each owed an ACK, from a client that reads none of them: the
    ACKs must not pile up in the worker, and the attacker must lose its connection."""
    with h2_server(send_timeout=2) as (server, usage), Bystander(server.port) as bystander, \
            RawConnection(server.port, receive_buffer=4096) as attacker:
        attacker.handshake()
        one = settings() if kind == "settings" else frame(PING, 0, 0, b"\x00" * 8)
        total = 512 * 1024 * 1024
        batch = one * (262144 // len(one))

        def batches() -> Iterator[bytes]:
            for _ in range(total // len(batch)):
                yield batch

        started = time.monotonic()
        sent, ended = _send_until_cut(attacker, batches())
        # cut off: the worker closes or aborts the connection the attacker will not read
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: _tcp_state(attacker.sock) in TCP_INFO_STATE_CLOSED, timeout=15)
        state = _tcp_state(attacker.sock)
        attacker.read_until_closed(timeout=10)
        acks = sum(1 for received in attacker.frames if received.type == one[3])
        _report(f"{kind.upper()} flood", usage, attacker,
                f"{sent / 1048576:.1f} MiB ({sent // len(one)} frames) sent until: {ended}; "
                f"{acks} ACKs read afterwards")
        assert state in TCP_INFO_STATE_CLOSED, f"the attacker's connection is open ({state})"
        assert sent < total
        assert usage.cpu_used() < 2.0
        assert usage.grown_mb() < 30
        bystander.check(started)


FRAMES_THAT_ASK_NOTHING = {
    # PRIORITY on idle streams: legal, and a frame each 14 bytes (CVE-2019-9513's kind)
    "priority": lambda stream_id: frame(PRIORITY, 0, stream_id, struct.pack(">LB", 0, 16)),
    # empty DATA on an open stream (CVE-2019-9518)
    "empty-data": lambda stream_id: frame(DATA, 0, 1, b""),
    # a frame type no one knows, which must be ignored
    "unknown-type": lambda stream_id: frame(0xFA, 0, 0, b""),
    # WINDOW_UPDATE of 1 on the connection while nothing waits for the window
    "window-update": lambda stream_id: window_update(0, 1),
    # RST_STREAM again and again on a stream already closed (by the first one)
    "rst-closed-stream": lambda stream_id: rst_stream(1),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", [
    pytest.param(kind, marks=pytest.mark.xfail(
        strict=True, reason="h2 reports nothing for a RST_STREAM on a closed stream, so the "
                            "session cannot count them"))
    if kind == "rst-closed-stream" else kind for kind in FRAMES_THAT_ASK_NOTHING])
def test_a_flood_of_frames_that_ask_nothing_is_cut_off(kind: str) -> None:
    """Frames that need no answer, so that nothing waits to be written and the worker reads
    on: each costs a little CPU, and a client sending them without end must lose its
    connection before it has cost the worker seconds."""
    build = FRAMES_THAT_ASK_NOTHING[kind]
    with h2_server() as (server, usage), Bystander(server.port) as bystander, \
            RawConnection(server.port) as attacker:
        attacker.handshake()
        attacker.send(attacker.headers_frame(1, request_headers("/hold", "POST"),
                                             end_stream=False))
        total = 32 * 1024 * 1024

        def batches() -> Iterator[bytes]:
            batch = b"".join(build(stream_id) for stream_id in range(3, 40_000, 2))
            for _ in range(total // len(batch)):
                yield batch

        started = time.monotonic()
        sent, ended = _send_until_cut(attacker, batches())
        attacker.read_until_closed(timeout=10)
        _report(f"{kind} flood", usage, attacker,
                f"{sent / 1048576:.1f} MiB sent until: {ended}")
        assert attacker.goaway_code() == ENHANCE_YOUR_CALM, attacker.frames[-5:]
        assert sent < total
        assert usage.cpu_used() < 2.0
        bystander.check(started)


@pytest.mark.timeout(120)
def test_zero_window_stall_is_bounded_and_cut_off() -> None:
    """A window of 0 on every stream and a socket never read, with 20 streams each asking
    for 50 MiB: the apps must wait for the window rather than buffer, and the connection must
    not be held for ever."""
    with h2_server(send_timeout=2) as (server, usage), Bystander(server.port) as bystander, \
            RawConnection(server.port, receive_buffer=4096) as attacker:
        attacker.handshake({INITIAL_WINDOW_SIZE: 0})
        started = time.monotonic()
        for stream_id in range(1, 41, 2):
            attacker.request(stream_id, "/big?50")
        stalled_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: _tcp_state(attacker.sock) in TCP_INFO_STATE_CLOSED, timeout=20)
        cut_after = time.monotonic() - stalled_at
        state = _tcp_state(attacker.sock)
        attacker.read_until_closed(timeout=10)
        data = sum(len(response.body) for response in attacker.responses.values())
        _report("zero-window stall", usage, attacker,
                f"20 streams of 50 MiB, {data} body bytes came, cut after {cut_after:.1f} s")
        assert data == 0  # a window of 0 admits no DATA
        assert state in TCP_INFO_STATE_CLOSED, f"the attacker's connection is open ({state})"
        assert usage.grown_mb() < 30
        assert usage.cpu_used() < 2.0
        bystander.check(started)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("acknowledged", [True, False], ids=["settings-acked", "not-acked"])
def test_streams_beyond_the_concurrency_limit_are_refused(acknowledged: bool) -> None:
    """``--h2-max-concurrent-streams 10`` and a client that opens 200 streams that stay open
    at once: the app never holds more than 10, the rest are refused (RST_STREAM
    REFUSED_STREAM or PROTOCOL_ERROR, or the connection ends with PROTOCOL_ERROR)."""
    with h2_server(http2_max_concurrent_streams=10) as (server, usage), \
            Bystander(server.port) as bystander, RawConnection(server.port) as attacker:
        attacker.handshake(ack=acknowledged)
        assert attacker.server_settings.get(MAX_CONCURRENT_STREAMS) == 10
        started = time.monotonic()
        headers = request_headers("/hold")
        attacker.send(b"".join(attacker.headers_frame(stream_id, headers, end_stream=True)
                               for stream_id in range(1, 401, 2)))
        attacker.read_until(lambda connection: connection.closed
                            or len(connection.resets()) >= 190, timeout=10)
        _, most = map(int, fetch(server.port, "/held")[0][1].split())
        _report("200 concurrent streams against a limit of 10", usage, attacker,
                f"the app held {most} at most")
        refused = [code for code in attacker.resets().values()
                   if code in (REFUSED_STREAM, PROTOCOL_ERROR)]
        assert most <= 10
        assert len(refused) >= 190 or attacker.goaway_code() == PROTOCOL_ERROR, \
            attacker.frames[-5:]
        attacker.close()
        wait_until(lambda: fetch(server.port, "/held")[0][1].startswith(b"0 "), timeout=10)
        assert usage.grown_mb() < 30
        bystander.check(started)


@pytest.mark.timeout(120)
def test_a_header_list_over_the_limit_is_refused() -> None:
    """200 fields of 1 KiB (200 KiB, in CONTINUATION frames): refused with 431, a stream reset or
    a GOAWAY, never served; the limit is advertised in SETTINGS_MAX_HEADER_LIST_SIZE."""
    with h2_server() as (server, usage), RawConnection(server.port) as attacker:
        attacker.handshake()
        limit = attacker.server_settings.get(MAX_HEADER_LIST_SIZE)
        fields = [(f"x-field-{index}", "v" * 1024) for index in range(200)]
        size = sum(len(name) + len(value) + 32 for name, value in fields)  # RFC 9113 §6.5.2
        block = attacker.header_block(request_headers("/", extra=fields))
        pieces = [block[offset:offset + 16384] for offset in range(0, len(block), 16384)]
        frames = [frame(HEADERS, END_STREAM | (END_HEADERS if len(pieces) == 1 else 0), 1,
                        pieces[0])]
        frames += [frame(CONTINUATION, END_HEADERS if index == len(pieces) - 1 else 0, 1,
                         piece) for index, piece in enumerate(pieces[1:], 1)]
        _send_until_cut(attacker, iter(frames))
        attacker.read_until(lambda connection: connection.closed or (1 in connection.responses
                            and (connection.responses[1].ended
                                 or connection.responses[1].reset is not None)), timeout=10)
        response = attacker.responses.get(1)
        _report("a 200 KiB header list", usage, attacker,
                f"advertised limit {limit}; answer {response}")
        assert limit is not None and limit < size
        refused = response is not None and (response.status == 431
                                            or response.reset is not None)
        assert refused or attacker.goaway_code() in (ENHANCE_YOUR_CALM, PROTOCOL_ERROR), \
            attacker.frames[-5:]
        assert response is None or response.status != 200
        assert usage.grown_mb() < 30


"""wsgi.input: the reading API over both sources, split at every offset; the spool's spill to
disk; the threaded buffer's blocking, 100-continue and flow-control callbacks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from prefork.errors import ClientDisconnected
from prefork.wsgi.input import (
    EMPTY_INPUT,
    SPILL_SIZE,
    BodySpool,
    InputStream,
    StreamingInput,
)

BODY = b"first line\nsecond\n\nno newline at the end"


def spooled(pieces: list[bytes]) -> tuple[BodySpool, InputStream]:
    spool = BodySpool()
    for piece in pieces:
        spool.append(piece)
    return spool, spool.stream()


def streaming(pieces: list[bytes]) -> InputStream:
    stream = StreamingInput(lambda f, *a: f(*a), 1 << 20, None, lambda n: None)
    for piece in pieces:
        stream.feed(piece)
    stream.finish()
    return stream


def splits(data: bytes) -> list[list[bytes]]:
    cases = [[data], [data[i:i + 1] for i in range(len(data))]]
    cases += [[data[:i], data[i:]] for i in range(1, len(data))]
    return cases


READERS: dict[str, Callable[[InputStream], bytes]] = {
    "read": lambda s: s.read(),
    "read-none": lambda s: s.read(None),
    "read-3": lambda s: b"".join(iter(lambda: s.read(3), b"")),
    "readline": lambda s: b"".join(iter(s.readline, b"")),
    "readline-4": lambda s: b"".join(iter(lambda: s.readline(4), b"")),
    "readlines": lambda s: b"".join(s.readlines()),
    "iter": lambda s: b"".join(s),
    "mixed": lambda s: s.readline(3) + s.read(5) + s.readline() + s.read(),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("source", ["spool", "streaming"])
def test_reading_at_every_split(source: str, reader: str) -> None:
    for pieces in splits(BODY):
        if source == "spool":
            spool, stream = spooled(pieces)
            assert READERS[reader](stream) == BODY
            spool.close()
        else:
            assert READERS[reader](streaming(pieces)) == BODY


@pytest.mark.parametrize("source", ["spool", "streaming"])
def test_lines_and_sizes(source: str) -> None:
    pieces = [b"ab\ncd", b"ef\n", b"gh"]
    spool = None
    if source == "spool":
        spool, stream = spooled(pieces)
    else:
        stream = streaming(pieces)
    assert stream.readline(2) == b"ab"
    assert stream.readline() == b"\n"
    assert stream.readline(0) == b""
    assert stream.read(4) == b"cdef"
    assert stream.readlines() == [b"\n", b"gh"]
    assert stream.read(10) == b"" and stream.readline() == b"" and stream.read() == b""
    if spool is not None:
        spool.close()


def test_readlines_hint() -> None:
    assert streaming([b"a\nb\nc\n"]).readlines(3) == [b"a\n", b"b\n"]  # as io: stop at >= hint


def test_empty_body() -> None:
    spool = BodySpool()
    assert spool.stream().read() == b""
    assert spool.stream().readline() == b""
    spool.close()


def test_spool_spills_to_disk_past_the_threshold() -> None:
    spool = BodySpool()
    piece = b"z" * 65536
    for _ in range(SPILL_SIZE // len(piece)):
        spool.append(piece)
    assert not spool.on_disk
    spool.append(b"more")
    assert spool.on_disk and spool.size == SPILL_SIZE + 4
    stream = spool.stream()
    assert len(stream.read()) == SPILL_SIZE + 4
    spool.close()
    assert not spool.on_disk


class Loop:
    """Stands for call_soon_threadsafe: records the calls, runs them when asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple[Any, ...]]] = []

    def __call__(self, function: Any, *args: Any) -> None:
        self.calls.append((function, args))


def test_streaming_blocks_until_fed_and_sends_continue_once() -> None:
    loop = Loop()
    continued: list[bool] = []
    stream = StreamingInput(loop, 10, lambda: continued.append(True), lambda n: None)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.read(6)))
    reader.start()
    stream.feed(b"abc")
    stream.feed(b"def")
    reader.join(5)
    assert got == [b"abcdef"]
    assert [f for f, _ in loop.calls].count(loop.calls[0][0]) == 1  # once: on the first read
    loop.calls[0][0]()
    assert continued == [True]
    stream.finish()
    assert stream.read() == b""


def test_streaming_asks_to_resume_only_when_crossing_the_limit() -> None:
    loop = Loop()
    consumed: list[int] = []
    stream = StreamingInput(loop, 10, None, consumed.append)
    stream.feed(b"x" * 8)
    assert stream.read(4) == b"xxxx" and loop.calls == []  # never above the limit
    stream.feed(b"y" * 12)  # 16 buffered: the protocol pauses reading
    for _ in range(5):
        stream.read(1)  # 15..11: still above
    assert loop.calls == []
    stream.read(1)  # 10: back under the limit
    assert len(loop.calls) == 1
    function, args = loop.calls[0]
    function(*args)
    assert consumed == [1] and stream.size == 10


def test_streaming_disconnect_wakes_the_reader() -> None:
    stream = StreamingInput(lambda f, *a: None, 10, None, lambda n: None)
    stream.feed(b"part")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            stream.read(100)
        except ClientDisconnected as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    stream.abort()
    reader.join(5)
    assert len(errors) == 1 and isinstance(errors[0], OSError)


def test_streaming_discard() -> None:
    stream = StreamingInput(lambda f, *a: None, 10, None, lambda n: None)
    stream.feed(b"12345")
    assert stream.discard() == 5 and stream.size == 0


def test_the_shared_empty_input_reads_nothing_every_way() -> None:
    # One object serves every request without a body: nothing read can leave state behind.
    for _ in range(2):
        assert EMPTY_INPUT.read() == EMPTY_INPUT.read(10) == EMPTY_INPUT.read(None) == b""
        assert EMPTY_INPUT.readline() == EMPTY_INPUT.readline(3) == b""
        assert EMPTY_INPUT.readlines() == [] and list(EMPTY_INPUT) == []

"""``wsgi.input``: the request body as the blocking file-like object WSGI apps read.

Two sources, one reading API (``read(n)``, ``read()``, ``readline(n)``, ``readlines()``,
iteration by lines), and end-of-file at the end of the body whatever its framing, so
``wsgi.input_terminated`` is true:

* :class:`BodySpool` (``--threads 1``): the body is collected on the loop before the app is
  called, in memory up to :data:`SPILL_SIZE`, then in a ``SpooledTemporaryFile`` that has moved
  to disk, so a 1 GB upload costs a file, not a gigabyte of heap. The app then reads it through
  :class:`BufferedInput`, which never blocks on the network.
* :class:`StreamingInput` (``--threads N``): the loop feeds received pieces into a buffer; the
  app's thread takes them, waiting on a condition while it is empty. The protocol pauses reading
  while the buffer holds more than ``limit`` bytes; the read that brings it back under the limit
  asks the loop to resume. Only that crossing asks, so a reader taking a byte at a time cannot
  make the socket be resumed once per byte and the buffer grow past the bound.

Rule: the loop side (``feed``, ``finish``, ``abort``) never blocks; only the app's thread waits.
"""

from __future__ import annotations

import abc
import io
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

from prefork.errors import ClientDisconnected

__all__ = [
    "EMPTY_INPUT",
    "SPILL_SIZE",
    "BodySpool",
    "BufferedInput",
    "EmptyInput",
    "InputStream",
    "StreamingInput",
]

# Bodies up to this size stay in memory; larger ones go to a temporary file (gunicorn and
# werkzeug spill at 1 MiB / 500 KiB too).
SPILL_SIZE: Final = 1024 * 1024
# What read()/readline() ask the source for when the caller gives no size.
_READ_SIZE: Final = 64 * 1024


class InputStream(abc.ABC):
    """The reading API over ``_next_chunk``; subclasses supply pieces of the body."""

    def __init__(self) -> None:
        self._buffer = b""  # read from the source, not yet given to the app

    @abc.abstractmethod
    def _next_chunk(self, size: int) -> bytes:
        """At most ``size`` bytes (any amount if negative); ``b""`` at the end of the body."""

    def read(self, size: int | None = -1) -> bytes:
        buffer = self._buffer
        if size is None or size < 0:
            parts = [buffer]
            while chunk := self._next_chunk(-1):
                parts.append(chunk)
            self._buffer = b""
            return b"".join(parts)
        if len(buffer) >= size:
            self._buffer = buffer[size:]
            return buffer[:size]
        parts = [buffer]
        have = len(buffer)
        while have < size:
            chunk = self._next_chunk(size - have)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buffer = data[size:]
        return data[:size]

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        have = 0
        buffer = self._buffer
        while True:
            end = len(buffer) if limit < 0 else min(len(buffer), limit - have)
            newline = buffer.find(b"\n", 0, end)
            if newline >= 0:
                end = newline + 1
            if newline >= 0 or 0 <= limit <= have + end:
                parts.append(buffer[:end])
                self._buffer = buffer[end:]
                return b"".join(parts)
            parts.append(buffer)
            have += len(buffer)
            buffer = self._next_chunk(_READ_SIZE)
            if not buffer:
                self._buffer = b""
                return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class BufferedInput(InputStream):
    """A body that is all here already, in memory or in a file."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__()
        self._file = file

    def _next_chunk(self, size: int) -> bytes:
        return self._file.read(size if size >= 0 else _READ_SIZE)

    def read(self, size: int | None = -1) -> bytes:
        if self._buffer:
            return super().read(size)
        return self._file.read(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> bytes:
        if self._buffer:
            return super().readline(size)
        return self._file.readline(-1 if size is None else size)


class EmptyInput(InputStream):
    """The ``wsgi.input`` of a request without a body. It never holds anything, so one object
    serves every such request: a GET costs no stream (an ``io.BytesIO`` cost 1.6k instructions
    per request)."""

    def _next_chunk(self, size: int) -> bytes:
        return b""


EMPTY_INPUT: Final = EmptyInput()


class BodySpool:
    """Collects a request body on the loop (``--threads 1``); see the module docstring."""

    __slots__ = ("_file", "_first", "size")

    def __init__(self) -> None:
        self._first = b""  # a body that came in one piece needs no file object at all
        self._file: tempfile.SpooledTemporaryFile[bytes] | None = None
        self.size = 0

    def append(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
        elif not self._first:
            self._first = data
        else:
            # closed by close(), which the cycle calls when the request ends
            self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                max_size=SPILL_SIZE, prefix="prefork-body-")
            self._file.write(self._first)
            self._file.write(data)
            self._first = b""

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self._file, "_rolled", False))  # a private attribute, 3.8-3.13

    def stream(self) -> BufferedInput:
        """The body from its start, for the app to read."""
        if self._file is not None:
            self._file.seek(0)
            return BufferedInput(self._file)
        return BufferedInput(io.BytesIO(self._first))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._first = b""


class StreamingInput(InputStream):
    """A body fed by the loop while the app's thread reads it (``--threads N``).

    ``call_soon`` is the loop's ``call_soon_threadsafe``; ``on_first_read`` runs on the loop when
    the app first asks for body bytes (the protocol sends ``100 Continue`` then);
    ``on_consumed(n)`` runs on the loop when a read brought the buffer back under ``limit``.
    """

    def __init__(self, call_soon: Callable[..., Any], limit: int,
                 on_first_read: Callable[[], None] | None,
                 on_consumed: Callable[[int], None]) -> None:
        super().__init__()
        self._cond = threading.Condition(threading.Lock())
        self._chunks: deque[bytes] = deque()
        self._call_soon = call_soon
        self._limit = limit
        self._on_first_read = on_first_read
        self._on_consumed = on_consumed
        self.size = 0  # buffered bytes; read by the loop for flow control
        self.eof = False
        self.gone = False

    # -- the loop's side: never blocks

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self.size += len(data)
            self._cond.notify()

    def finish(self) -> None:
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """The client left (or the cycle ended): a reader waiting for more gets an error."""
        with self._cond:
            self.gone = True
            self._cond.notify_all()

    def discard(self) -> int:
        """Drop what is buffered (the response went out; nobody will read it)."""
        with self._cond:
            size, self.size = self.size, 0
            self._chunks.clear()
        return size

    # -- the app's side

    def _next_chunk(self, size: int) -> bytes:
        first = self._on_first_read
        if first is not None:
            self._on_first_read = None
            self._call_soon(first)
        with self._cond:
            chunks = self._chunks
            while not chunks:
                if self.eof:
                    return b""
                if self.gone:
                    raise ClientDisconnected("the client disconnected before sending the body")
                self._cond.wait()
            chunk = chunks.popleft()
            if 0 <= size < len(chunk):
                chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            before = self.size
            self.size = after = before - len(chunk)
        if before > self._limit >= after:
            self._call_soon(self._on_consumed, len(chunk))
        return chunk

"""Sending a file's bytes on a connection: the zero-copy paths and the fallback.

``send_file`` is what ``Connection.send_file`` does (``prefork.workers.protocol``): the loop's
``sendfile`` where it has one; else (uvloop) ``os.sendfile`` on a duplicate of the socket's fd,
waiting for writability on the duplicate; else, and for TLS or ``--no-sendfile``, reads and
writes in ``FILE_CHUNK`` pieces with the transport's back-pressure. ``FileTarget`` is what it
may use of the connection, so this module imports no connection.

Rule: bytes written here are timed like the transport's own (the connection's send timeout),
and whatever the connection held is written first, so bytes keep their order.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO, Final, Protocol

from prefork.workers.serving import ServingState

# Read size when a file is sent without loop.sendfile (uvloop has none).
FILE_CHUNK: Final = 256 * 1024


class FileTarget(Protocol):
    """What file sending may use of its connection."""

    file_left: int  # bytes sendfile(2) waits to write: the send timeout counts them
    send_deadline: float
    write_waiter: asyncio.Future[None] | None

    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def state(self) -> ServingState: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def closed(self) -> bool: ...

    @property
    def write_paused(self) -> bool: ...

    def release_held(self) -> None: ...

    async def drain(self) -> None: ...

    def time_sending(self) -> None: ...


async def send_file(connection: FileTarget, file: IO[bytes], count: int, offset: int = 0) -> int:
    """Write ``count`` bytes of ``file`` from ``offset``; returns how many went out.

    Zero-copy where possible: the loop's ``sendfile``, or (uvloop has none) ``os.sendfile``
    on a duplicate of the socket's fd once the transport's own buffer is empty, waiting for
    writability on the duplicate (uvloop refuses a reader or writer on a transport's fd).
    Otherwise, and for TLS, the file is read and written in pieces with back-pressure."""
    transport = connection.transport
    if transport is None or connection.closed:
        raise ConnectionResetError("the connection is closed")
    connection.release_held()
    state = connection.state
    # --no-sendfile, or TLS, where the bytes must be encrypted on their way (asyncio's
    # loop.sendfile refuses a TLS transport with a RuntimeError): read and write them.
    if not state.config.sendfile or transport.get_extra_info("sslcontext") is not None:
        return await _send_file_by_reads(connection, transport, file, offset, count)
    if state.native_sendfile:
        try:
            return await connection.loop.sendfile(transport, file, offset, count, fallback=False)
        except NotImplementedError:  # uvloop's loop has no sendfile: never ask it again
            state.native_sendfile = False
        except asyncio.SendfileNotAvailableError:  # this transport cannot
            pass
    sock = transport.get_extra_info("socket")
    if sock is not None and transport.get_write_buffer_size() == 0:
        return await _sendfile_on_duplicate(connection, sock.fileno(), file, offset, count)
    return await _send_file_by_reads(connection, transport, file, offset, count)


async def _send_file_by_reads(connection: FileTarget, transport: asyncio.Transport,
                              file: IO[bytes], offset: int, count: int) -> int:
    file.seek(offset)
    sent = 0
    while sent < count and not connection.closed:
        chunk = file.read(min(FILE_CHUNK, count - sent))
        if not chunk:
            break
        transport.write(chunk)
        sent += len(chunk)
        await connection.drain()
    return sent


async def _sendfile_on_duplicate(connection: FileTarget, fd: int, file: IO[bytes], offset: int,
                                 count: int) -> int:
    duplicate = os.dup(fd)
    sent = 0
    try:
        while sent < count and not connection.closed:
            try:
                sent += os.sendfile(duplicate, file.fileno(), offset + sent, count - sent)
            except BlockingIOError:
                # Timed as the transport's own writes are; connection_lost (the send
                # timeout's abort among others) resolves the wait.
                connection.file_left = count - sent
                if not connection.send_deadline:
                    connection.time_sending()
                writable = connection.write_waiter = connection.loop.create_future()
                connection.loop.add_writer(duplicate, _resolve, writable)
                try:
                    await writable
                finally:
                    connection.write_waiter = None
                    connection.loop.remove_writer(duplicate)
                continue
            except OSError:
                if connection.closed:
                    break
                raise
            if sent < count and os.fstat(file.fileno()).st_size <= offset + sent:
                break  # the file shrank
    finally:
        os.close(duplicate)
        connection.file_left = 0
        if not connection.write_paused and not connection.closed:
            connection.send_deadline = 0.0
    return sent


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

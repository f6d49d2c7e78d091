"""A message channel over one end of an ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair.

Both the arbiter (selector loop) and the workers (event loop readers) use it with a non-blocking
socket: ``send`` never blocks and reports a full buffer, ``receive`` drains what is queued.
File descriptors ride along with a frame through ``SCM_RIGHTS``.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
from typing import Any

from prefork.ipc.codec import MAX_FRAME, decode, encode

MAX_FDS_PER_FRAME = 64  # SCM_RIGHTS allows 253; batches stay well under the ancillary buffer


class ChannelClosed(Exception):
    """The other end is gone."""


class Channel:
    """One end of a control pair: frames in, frames out, fds attached."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """Two connected channels; the first is conventionally the arbiter's end."""
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(left), cls(right)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: Any, fds: list[int] | tuple[int, ...] = ()) -> bool:
        """Queue one frame; False when the peer's buffer is full (nothing was sent)."""
        frame = encode(msg)
        try:
            if fds:
                socket.send_fds(self.sock, [frame], list(fds))
            else:
                self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            return False
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ChannelClosed(str(exc)) from None
        return True

    def receive(self) -> list[tuple[Any, list[int]]]:
        """Every frame queued now, with its fds; raises ChannelClosed at end of stream."""
        received: list[tuple[Any, list[int]]] = []
        fd_size = array.array("i").itemsize
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(
                    MAX_FRAME, socket.CMSG_SPACE(MAX_FDS_PER_FRAME * fd_size)
                )
            except (BlockingIOError, InterruptedError):
                return received
            except (ConnectionResetError, OSError) as exc:
                if received:
                    return received
                raise ChannelClosed(str(exc)) from None
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % fd_size
                    fds.extend(array.array("i", payload[:usable]))
            if not data:
                for fd in fds:
                    os.close(fd)
                if received:
                    return received
                raise ChannelClosed("end of stream")
            received.append((decode(data), fds))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

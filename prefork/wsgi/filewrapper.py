"""``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling").

A :class:`FileWrapper` is an ordinary iterable of blocks, so anything that wraps or inspects the
app's result still works. When the app returns one unwrapped over a regular file, the cycle
hands the file to the protocol's ``send_file`` instead (``sendfile(2)`` where the loop has it:
the bytes never pass through Python) -- see :func:`file_span`. Does no I/O itself beyond
``fstat`` and ``tell`` in :func:`file_span`.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["FileWrapper", "file_span"]


class FileWrapper:
    """Iterates ``filelike`` in ``blksize`` blocks; ``close()`` closes it (PEP 3333)."""

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def file_span(result: object) -> tuple[IO[bytes], int, int] | None:
    """``(file, offset, size)`` when ``result`` is a FileWrapper over a regular binary file
    (``size``: the bytes from its current position to its end); None when it must be iterated."""
    if type(result) is not FileWrapper:
        return None
    file = result.filelike
    if isinstance(file, io.TextIOBase):
        return None
    try:
        fd = file.fileno()
        info = os.fstat(fd)
        offset = file.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(info.st_mode) or not isinstance(offset, int):
        return None
    return file, offset, max(info.st_size - offset, 0)

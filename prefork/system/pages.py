"""Hand back to the kernel the pages of an object that hold nothing but zeros.

uvloop's loop object carries its read buffer inline (256,000 bytes), and Python zeroes every new
object, so each worker's loop wrote 250 kB of zeros to fresh pages as it was made: private
memory in every worker, although a request's reads touch only the buffer's first page. A
private anonymous page that holds only zeros reads the same once ``madvise(MADV_DONTNEED)`` has
dropped it (the kernel maps its zero page again, and the first write there gets a fresh page),
so dropping such pages changes nothing but the memory the worker holds.

``ctypes`` reaches ``madvise``; it is imported with this module, which the arbiter imports
before it forks (through ``prefork.workers.base``), so that its pages are shared by the workers
rather than copied into each. Linux only: elsewhere, and wherever the C library cannot be
reached, nothing is dropped.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections.abc import Callable

PAGE_SIZE = mmap.PAGESIZE
MADV_DONTNEED = 4  # Linux's value (asm-generic/mman-common.h)
_ZEROS = bytes(PAGE_SIZE)


def _madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


_MADVISE = _madvise()


def release_zero_pages(obj: object) -> int:
    """Drop the whole pages inside ``obj``'s own memory (its C struct, ``__basicsize__`` bytes
    from its address: CPython's ``id``) that hold only zeros; the number of bytes dropped.

    Only for an object that Python allocated (private anonymous memory) and that nothing else
    writes to while this runs: a worker's loop before it runs."""
    if _MADVISE is None:
        return 0
    start = id(obj)
    end = start + type(obj).__basicsize__
    first = -(-start // PAGE_SIZE) * PAGE_SIZE  # the first page that starts inside obj
    last = end // PAGE_SIZE * PAGE_SIZE  # the end of the last page that ends inside it
    released = 0
    run_start = -1  # the first page of the current run of zero pages
    for page in range(first, last + PAGE_SIZE, PAGE_SIZE):
        if page < last and ctypes.string_at(page, PAGE_SIZE) == _ZEROS:
            if run_start < 0:
                run_start = page
            continue
        if run_start >= 0:
            if _MADVISE(run_start, page - run_start, MADV_DONTNEED) == 0:
                released += page - run_start
            run_start = -1
    return released

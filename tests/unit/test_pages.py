"""prefork.system.pages: a worker's loop gives back its zeroed read buffer and still reads."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from prefork.system.pages import PAGE_SIZE, release_zero_pages

uvloop = pytest.importorskip("uvloop")
pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise: Linux")]


def resident_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE // 1024


def test_a_fresh_uvloop_loop_gives_back_its_read_buffer() -> None:
    loop = uvloop.new_event_loop()
    try:
        before = resident_kb()
        released = release_zero_pages(loop)
        # 256,000 bytes of buffer: at least 60 whole pages of zeros inside the object
        assert released >= 60 * PAGE_SIZE
        assert resident_kb() <= before - released // 1024 + 16
        after = resident_kb()
        # dropped pages read as zeros (the kernel's zero page, not resident), so are found again
        assert release_zero_pages(loop) == released
        assert resident_kb() <= after + 16
    finally:
        loop.close()


def test_the_loop_reads_large_messages_after_the_release() -> None:
    loop = uvloop.new_event_loop()
    release_zero_pages(loop)
    message = bytes(range(256)) * 1000  # fills the read buffer's pages again

    async def echo_through_a_pair() -> bytes:
        left, right = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=left)
        right.setblocking(False)
        await loop.sock_sendall(right, message)
        right.close()
        received = await reader.read()
        writer.close()
        return received

    try:
        assert loop.run_until_complete(echo_through_a_pair()) == message
    finally:
        loop.close()


def test_an_object_smaller_than_a_page_keeps_everything() -> None:
    assert release_zero_pages(object()) == 0

"""The IPC codec and the socket-pair channel (fds included)."""

from __future__ import annotations

import os

import pytest

from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.codec import CodecError, decode, encode, split_frames
from prefork.ipc.messages import BootFailed, Command, Connections, Heartbeat, Ready, Reply


@pytest.mark.parametrize("msg", [
    Ready(pid=12), Heartbeat(requests=3, in_flight=1, connections=2), BootFailed(reason="x: y"),
    Command(name="scale", argument=4), Reply(name="stats", data={"workers": [1, 2]}),
])
def test_round_trip(msg) -> None:
    assert decode(encode(msg)) == msg


def test_stream_split_keeps_partial_tail() -> None:
    stream = encode(Ready(pid=1)) + encode(Ready(pid=2))
    frames, rest = split_frames(stream[:-3])
    assert [decode(f) for f in frames] == [Ready(pid=1)]
    frames, rest = split_frames(rest + stream[-3:])
    assert [decode(f) for f in frames] == [Ready(pid=2)] and rest == b""


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00\x05\x01{}", b"\x00\x00\x00\x03\xff{}",
                                   b"\x00\x00\x00\x03\x01[]", b"\x00\x00\x00\x03\x01{\"x\":1}"[:8]])
def test_bad_frames(frame: bytes) -> None:
    with pytest.raises(CodecError):
        decode(frame)


def test_channel_passes_fds_and_reports_close() -> None:
    left, right = Channel.pair()
    read_fd, write_fd = os.pipe()
    try:
        assert left.send(Connections(count=1), [read_fd])
        [(msg, fds)] = right.receive()
        assert msg == Connections(count=1) and len(fds) == 1
        os.write(write_fd, b"ok")
        assert os.read(fds[0], 2) == b"ok"
        os.close(fds[0])
        assert right.receive() == []
        left.close()
        with pytest.raises(ChannelClosed):
            right.receive()
    finally:
        os.close(read_fd)
        os.close(write_fd)
        right.close()


def test_codec_does_no_io() -> None:
    import ast
    from pathlib import Path

    import prefork.ipc.codec as codec

    tree = ast.parse(Path(codec.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"asyncio", "socket", "selectors", "threading", "os"}

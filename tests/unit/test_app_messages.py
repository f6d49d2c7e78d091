"""prefork.messages without forking: payload checks, the worker link over a real socket pair."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import prefork.messages
from prefork.arbiter.relay import relay_broadcast
from prefork.config import Config
from prefork.hooks import WorkerView
from prefork.ipc.channel import Channel
from prefork.ipc.messages import AppMessage, Broadcast, BroadcastRequest
from prefork.messages import MAX_PAYLOAD, WorkerLink, check_payload

LOG = logging.getLogger("test.app_messages")
PairMaker = Callable[[], tuple[Channel, Channel]]


@pytest.fixture
def pair() -> Iterator[PairMaker]:
    """Channel pairs, closed after the test."""
    opened: list[Channel] = []

    def make() -> tuple[Channel, Channel]:
        ends = Channel.pair()
        opened.extend(ends)
        return ends

    yield make
    for channel in opened:
        channel.close()


def _link(pair: PairMaker, listeners: list[Any] | None = None,
          **settings: Any) -> tuple[WorkerLink, Channel]:
    arbiter_end, worker_end = pair()
    config = Config.from_mapping(settings)
    view = WorkerView(1234, 1, 0, 2, config, LOG)
    return WorkerLink(worker_end, view, config, listeners or [], LOG), arbiter_end


@pytest.mark.parametrize("data", [{1, 2}, object(), b"bytes", {"nested": [1, {2: 3j}]}])
def test_non_json_data_is_a_type_error(data: Any) -> None:
    with pytest.raises(TypeError, match="must be JSON data"):
        check_payload(data)


def test_circular_data_is_a_type_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="Circular reference"):
        check_payload(loop)


def test_size_limit_counts_encoded_bytes() -> None:
    assert check_payload("x" * (MAX_PAYLOAD - 2)) == MAX_PAYLOAD  # two quotes
    with pytest.raises(ValueError, match="65537 bytes is over the 65536-byte limit"):
        check_payload("x" * (MAX_PAYLOAD - 1))
    with pytest.raises(ValueError):
        check_payload("\u00e9" * 11000)  # six bytes each once escaped


def test_outside_a_worker_nothing_is_sent_but_bad_data_still_raises() -> None:
    assert prefork.messages.send({"a": 1}) is False
    assert prefork.messages.broadcast({"a": 1}) is False
    assert prefork.messages.pid is None and prefork.messages.slot is None
    with pytest.raises(TypeError):
        prefork.messages.send({1, 2})
    with pytest.raises(ValueError):
        prefork.messages.broadcast("x" * MAX_PAYLOAD)
    with pytest.raises(AttributeError):
        _ = prefork.messages.nothing_like_this  # type: ignore[attr-defined]  # on purpose


def test_link_sends_frames_the_arbiter_decodes(pair: PairMaker) -> None:
    link, arbiter_end = _link(pair)
    assert link.send({"a": [1, 2]}) is True
    assert link.broadcast(("tuple", "becomes", "list")) is True
    received = [msg for msg, _ in arbiter_end.receive()]
    assert received == [AppMessage(data={"a": [1, 2]}),
                        BroadcastRequest(data=["tuple", "becomes", "list"])]


def test_full_or_closed_channel_is_false_not_an_exception(pair: PairMaker) -> None:
    link, arbiter_end = _link(pair)
    payload = "x" * 60000
    sent = 0
    while link.send(payload):
        sent += 1
        assert sent < 1000, "the socket buffer never filled"
    assert sent >= 1
    arbiter_end.close()
    assert link.send({"a": 1}) is False
    assert link.broadcast({"a": 1}) is False


def test_a_forked_child_of_the_worker_may_not_send(pair: PairMaker) -> None:
    link, arbiter_end = _link(pair)
    link.pid = -1  # what a child sees: the link was made by another pid
    assert link.send({"a": 1}) is False
    assert arbiter_end.receive() == []


def test_deliver_runs_hook_then_listeners_and_survives_a_raising_one(
        pair: PairMaker, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[str, Any, Any]] = []

    def hook(worker: WorkerView, obj: Any) -> None:
        calls.append(("hook", worker.slot, obj))

    def broken(obj: Any, origin: int) -> None:
        raise RuntimeError("boom")

    def listener(obj: Any, origin: int) -> None:
        calls.append(("listener", origin, obj))

    async def later(obj: Any, origin: int) -> None:
        await asyncio.sleep(0)
        calls.append(("async", origin, obj))

    async def failing_later(obj: Any, origin: int) -> None:
        raise KeyError("async boom")

    link, _ = _link(pair, [broken, listener, later, failing_later], on_broadcast=hook)

    async def main() -> None:
        link.deliver(Broadcast(data={"k": 1}, origin=99))
        for _ in range(5):
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger=LOG.name):
        asyncio.run(main())
    assert calls == [("hook", 2, {"k": 1}), ("listener", 99, {"k": 1}), ("async", 99, {"k": 1})]
    messages = [record.getMessage() for record in caplog.records]
    assert any("listener" in m and "broken" in m for m in messages)
    assert any("failing_later" in m for m in messages)


def test_relay_skips_full_and_closed_channels(pair: PairMaker) -> None:
    pairs = [pair() for _ in range(3)]
    (open_arbiter, open_worker), (full_arbiter, _full_worker), (gone_arbiter, gone_worker) = pairs
    while full_arbiter.send(Broadcast(data="x" * 60000, origin=0)):
        pass
    gone_worker.close()
    channels = [(1, open_arbiter), (2, full_arbiter), (3, gone_arbiter)]
    assert relay_broadcast(channels, {"invalidate": "k"}, 7, LOG) == 1
    assert [msg for msg, _ in open_worker.receive()] == [
        Broadcast(data={"invalidate": "k"}, origin=7)]
    with pytest.raises(TypeError):
        relay_broadcast(channels, {1, 2}, 7, LOG)


def test_the_earlier_module_name_still_reaches_the_messages_api() -> None:
    import prefork.messages
    import prefork.worker

    assert prefork.worker.send is prefork.messages.send
    assert prefork.worker.broadcast is prefork.messages.broadcast
    assert prefork.worker.on_broadcast is prefork.messages.on_broadcast
    assert prefork.worker.pid is None and prefork.worker.slot is None  # not in a worker

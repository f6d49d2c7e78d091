"""prefork.asgi.ready: a completed future that also runs as a coroutine."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from prefork.asgi.ready import Ready, ready

pytestmark = pytest.mark.timeout(10)


def test_await_gives_the_result() -> None:
    async def main() -> object:
        return await ready(asyncio.get_running_loop(), {"type": "http.disconnect"})

    assert asyncio.run(main()) == {"type": "http.disconnect"}


def test_passes_for_a_coroutine_with_create_task() -> None:
    async def main() -> object:
        future = ready(asyncio.get_running_loop(), 42)
        assert asyncio.iscoroutine(future) and inspect.isawaitable(future)
        return await asyncio.create_task(future)

    assert asyncio.run(main()) == 42


def test_the_same_instance_serves_many_awaits_and_tasks() -> None:
    async def main() -> list[object]:
        shared = ready(asyncio.get_running_loop(), None)
        results = [await shared for _ in range(3)]
        results += await asyncio.gather(*(asyncio.create_task(shared) for _ in range(3)))
        return results

    assert asyncio.run(main()) == [None] * 6


def test_coroutine_protocol() -> None:
    async def main() -> None:
        future = ready(asyncio.get_running_loop(), "x")
        with pytest.raises(StopIteration) as stopped:
            future.send(None)
        assert stopped.value.value == "x"
        with pytest.raises(asyncio.CancelledError):
            future.throw(asyncio.CancelledError)
        with pytest.raises(ValueError, match="boom"):
            future.throw(ValueError("boom"))
        future.close()
        assert isinstance(future, Ready) and future.result() == "x"

    asyncio.run(main())



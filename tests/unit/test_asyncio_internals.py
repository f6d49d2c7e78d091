"""Guards for the private asyncio names the request path relies on, one test each, so that a
Python that changes one fails here by name rather than somewhere in a request. Run on every
supported Python (3.10-3.13). Where each is used and why no public API does the job:

* ``asyncio.tasks._enter_task``/``_leave_task`` (``prefork.workers.eager``): make a pooled task
  current while a request's first step runs outside any task. 3.12's ``eager_task_factory``
  starts a coroutine at once too, but still makes, names and registers a task per request.
* ``Task._log_destroy_pending`` (``prefork.workers.eager``): an idle pooled task collected with
  its closed loop is not reported as a lost task.
* ``asyncio.coroutines._is_coroutine`` (``prefork.asgi.ready``): what
  ``asyncio.iscoroutinefunction`` looks for on 3.10-3.11, where ``inspect`` has no
  ``markcoroutinefunction`` and ASGI's callables are instances, not functions.
* ``asyncio._set_running_loop`` and, from 3.12, ``asyncio.tasks._swap_current_task``
  (``prefork.wsgi.cycle``): hide the worker's loop and task from an inline WSGI app's code.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

import pytest

from prefork.asgi.ready import ASYNCIO_MARK, INSPECT_MARK
from prefork.workers import eager
from prefork.wsgi.cycle import _hide_loop, _show_loop

pytestmark = pytest.mark.timeout(30)


def test_enter_and_leave_task_exist_so_requests_start_without_a_task() -> None:
    assert eager.SUPPORTED

    async def main() -> tuple[Any, Any, Any]:
        starter = eager.task_starter(asyncio.get_running_loop())
        assert isinstance(starter, eager.EagerStarter)
        await asyncio.sleep(0)  # the first host takes its first step
        seen: list[Any] = []

        async def finishes() -> None:
            seen.append(asyncio.current_task())

        async def waits() -> None:
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())

        loop = asyncio.get_running_loop()
        loop.call_soon(starter.start, finishes())  # outside any task's step, as data_received
        await asyncio.sleep(0)
        loop.call_soon(starter.start, waits())
        for _ in range(5):
            await asyncio.sleep(0)
        starter.close()
        return tuple(seen)  # type: ignore[return-value]

    first, waiting_before, waiting_after = asyncio.run(main())
    assert isinstance(first, asyncio.Task)
    assert isinstance(waiting_before, asyncio.Task) and waiting_after is waiting_before


def test_a_task_takes_log_destroy_pending() -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(0))
        assert task._log_destroy_pending is True  # type: ignore[attr-defined]
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        assert task._log_destroy_pending is False  # type: ignore[attr-defined]
        await task

    asyncio.run(main())


def test_the_marks_make_an_instance_a_coroutine_function() -> None:
    class Callable:
        _is_coroutine = ASYNCIO_MARK
        _is_coroutine_marker = INSPECT_MARK

        async def __call__(self) -> None:
            return None

    if sys.version_info < (3, 12):
        assert ASYNCIO_MARK is not None
        assert asyncio.iscoroutinefunction(Callable())
    else:
        assert INSPECT_MARK is not None
        assert inspect.iscoroutinefunction(Callable())


def test_the_loop_and_the_task_can_be_hidden_from_the_app() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        hidden = _hide_loop(loop)
        try:
            with pytest.raises(RuntimeError):
                asyncio.get_running_loop()
            if sys.version_info >= (3, 12):
                assert hidden is task
                assert asyncio.current_task(loop) is None
        finally:
            _show_loop(loop, hidden)
        assert asyncio.get_running_loop() is loop
        assert asyncio.current_task() is task

    asyncio.run(main())

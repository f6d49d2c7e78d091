"""What an ASGI ``send`` or ``receive`` returns when it had nothing to wait for.

ASGI asks for awaitable callables, not coroutine functions. A coroutine per call costs its
creation and a frame to run, while ``await`` on a future that is already done stays in C and
returns its result at once; so the cycles do the work in the call and return a :class:`Ready`
(with the cycle's end folded into one engine call, a hello request went from 113.0k to 109.9k
instructions under cachegrind, ``bench/http_engine.py``).

uvicorn's callables are coroutine functions, and some code hands their result to
``asyncio.create_task``, which only takes coroutines. A :class:`Ready` therefore also speaks
the coroutine protocol (``send``, ``throw``, ``close``, registered as a
``collections.abc.Coroutine``): a task made from it finishes at its first step with the result.
And code that asks whether the callable is a coroutine function (asgiref's ``async_to_sync``
warns otherwise) is told it is: the callables are instances of classes that carry
``ASYNCIO_MARK`` and ``INSPECT_MARK`` as the class attributes ``_is_coroutine`` and
``_is_coroutine_marker``, which ``asyncio.iscoroutinefunction`` (3.10-3.11) and
``inspect.iscoroutinefunction`` (3.12+, what ``inspect.markcoroutinefunction`` sets) read
through an instance. (A marked method would do as well, but the methods of a compiled class
cannot carry attributes.) This module does no I/O and is never compiled (``setup.py``):
:class:`Ready` subclasses the C ``Future``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any, NoReturn

__all__ = ["ASYNCIO_MARK", "INSPECT_MARK", "Ready", "ready"]


def _inspect_mark() -> object:
    """The value ``inspect.markcoroutinefunction`` (3.12+) stores as ``_is_coroutine_marker``,
    taken from the function itself: the module-level name of that sentinel differs between
    versions (``_is_coroutine_marker`` in 3.12, ``_is_coroutine_mark`` in 3.13)."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is None:
        return None

    def probe() -> None:
        return None

    return getattr(mark(probe), "_is_coroutine_marker", None)


# What asyncio.iscoroutinefunction (3.10-3.11) and inspect.iscoroutinefunction (3.12+) look for.
ASYNCIO_MARK: object = getattr(asyncio.coroutines, "_is_coroutine", None)
INSPECT_MARK: object = _inspect_mark()


class Ready(asyncio.Future[Any]):
    """A completed future that can also be run as a coroutine."""

    __slots__ = ()

    def send(self, value: object) -> NoReturn:
        raise StopIteration(self.result())

    def throw(self, exc: Any, value: Any = None, traceback: Any = None) -> NoReturn:
        if value is None:
            value = exc if isinstance(exc, BaseException) else exc()
        raise value.with_traceback(traceback) if traceback is not None else value

    def close(self) -> None:
        return None


Coroutine.register(Ready)


def ready(loop: asyncio.AbstractEventLoop, result: Any) -> Ready:
    """A :class:`Ready` of ``loop`` holding ``result``."""
    future = Ready(loop=loop)
    future.set_result(result)
    return future


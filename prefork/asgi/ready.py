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
warns otherwise) is told it is: :func:`coroutine_function` marks it, as
``inspect.markcoroutinefunction`` does on 3.12+. This module does no I/O.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

__all__ = ["Ready", "coroutine_function", "ready"]

F = TypeVar("F", bound=Callable[..., Any])


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


def coroutine_function(func: F) -> F:
    """Mark ``func``, which returns an awaitable, as a coroutine function for introspection:
    ``inspect.iscoroutinefunction`` on 3.12+, ``asyncio.iscoroutinefunction`` before."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        return mark(func)  # type: ignore[no-any-return]  # typeshed's overloads vary by version
    func._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]  # 3.10-3.11
    return func

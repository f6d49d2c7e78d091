"""Start a request's coroutine at once, inside ``data_received``, without a task of its own.

A task per request is the largest share of an ASGI hello's cost on 3.11 (counted with callgrind
on a keep-alive connection: 15k of 56k instructions go to creating the task, naming it,
entering it in asyncio's ``WeakSet``, scheduling its first step and freeing it all), and most
handlers never wait for anything. So the first step of the coroutine runs at once, in a fresh
copy of the context as a task's would, while ``asyncio.current_task()`` answers a *host*: a real
task, kept idle in a per-worker pool, waiting on a future. When the step finishes the
coroutine, the host goes back to the pool untouched, and no task was made or scheduled.

A coroutine that does wait is handed to its host, which runs the rest of it as its own task
would (everything goes through the host's task: the futures it waits on, cancellation,
``asyncio.timeout``, anyio's cancel scopes, all of which saw that task from the first step)
and then ends. A host runs at most one such coroutine, so nothing a request did to its task (a
cancellation requested, ``uncancel`` counts, a stored reference) reaches a later request; a
replacement is started at once. A host is only lent while it waits in the pool, so a host
cancelled while idle (a cancellation requested during a first step, or at shutdown) is never
lent again.

Where it cannot apply, a plain task starts the coroutine (eagerly on 3.12+): inside another
task's step (a pipelined request started by the previous one's task), while the pool is empty
(its replacement host has not taken its first step yet), and on a Python whose asyncio lacks
``_enter_task``/``_leave_task`` (none from 3.7 to 3.13 does).

Private asyncio names used here, guarded by ``tests/unit/test_asyncio_internals.py``:
``asyncio.tasks._enter_task``/``_leave_task`` (no public call makes a task current outside its
own step; a stock eager task, ``eager_start=True`` as ``eager_task_factory`` makes, still makes
and registers a task per request: 0.5k more instructions per ASGI hello on 3.12, 0.3k on 3.13,
compiled, ``bench/http_engine.py``'s protocol rows) and
``Task._log_destroy_pending`` (an idle host collected with its closed loop lost nothing).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final, cast

# Private to asyncio since 3.7 and used by its own pure-Python Task; checked for at start-up.
_enter_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_enter_task", None)
_leave_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_leave_task", None)
SUPPORTED = _enter_task is not None and _leave_task is not None

RequestCoroutine = Coroutine[Any, Any, None]
# What the first step returns for a coroutine that finished (a waiting one may yield None).
_FINISHED: Final = object()


def plain_starter(
    loop: asyncio.AbstractEventLoop,
) -> Callable[[RequestCoroutine], asyncio.Task[None]]:
    """A task for the coroutine: eagerly started where Python can (3.12+); a C callable either
    way, so that starting one adds no Python frame."""
    if sys.version_info >= (3, 12):
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    return loop.create_task


class Host:
    """One pooled task: idle, it waits on ``wake``; lent, it is current during a first step;
    handed a coroutine that waits, it runs the rest of it and ends."""

    __slots__ = ("job", "starter", "task", "wake")

    def __init__(self, starter: EagerStarter) -> None:
        self.starter = starter
        self.wake: asyncio.Future[None] | None = None
        self.job: Continuation | None = None
        self.task: asyncio.Task[None] = starter.loop.create_task(self.serve(), name="prefork-host")
        # An idle host whose loop is closed (a worker's, or a test's) is collected pending,
        # which loses nothing: asyncio's "Task was destroyed but it is pending!" would mislead
        # (hand_over turns it back on: a request's coroutine is something to lose).
        cast(Any, self.task)._log_destroy_pending = False

    async def serve(self) -> None:
        starter = self.starter
        starter.starting_host = False
        self.wake = wake = starter.loop.create_future()
        starter.idle.append(self)
        try:
            await wake
        except asyncio.CancelledError:
            if self in starter.idle:
                starter.idle.remove(self)
            job = self.job
            if job is None:
                raise
            # Cancelled during the first step of the coroutine it was then handed: the
            # coroutine gets the cancellation where it waits, as in a task of its own.
            if isinstance(job.waiting_on, asyncio.Future):
                job.waiting_on.cancel()
            else:
                job.error = asyncio.CancelledError()
        job = self.job
        assert job is not None  # woken only by hand_over
        await job

    def cancelled(self) -> bool:
        """Whether the task was asked to cancel while lent: it waits on ``wake`` then (only a
        waiting host is lent), so ``Task.cancel`` cancelled that future."""
        wake = self.wake
        return wake is not None and wake.done()

    def hand_over(self, job: Continuation) -> None:
        self.job = job
        cast(Any, self.task)._log_destroy_pending = True
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)


class Continuation:
    """The rest of a coroutine whose first step ran outside any task: awaited by its host, it
    passes every value the coroutine yields up to the host's task and every result or
    exception the task sends back down, in the coroutine's own context (what ``yield from``
    does, with a context switch at each step)."""

    __slots__ = ("context", "coro", "error", "waiting_on")

    def __init__(self, coro: RequestCoroutine, context: contextvars.Context,
                 waiting_on: Any) -> None:
        self.coro = coro
        self.context = context
        self.waiting_on = waiting_on
        self.error: BaseException | None = None

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self.coro
        run = self.context.run
        error = self.error
        value = self.waiting_on
        sent: Any = None
        while True:
            if error is None:
                try:
                    sent = yield value
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:  # a cancellation, or a future's exception
                    error = exc
            try:
                if error is None:
                    value = run(coro.send, sent)
                else:
                    thrown, error = error, None
                    value = run(coro.throw, thrown)
            except StopIteration:
                return


class EagerStarter:
    """Starts request coroutines for one worker's loop; ``start`` is what the protocol calls."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: list[Host] = []
        self.starting_host = False  # a replacement's task has not taken its first step yet
        self.plain = plain_starter(loop)
        # kept as attributes: a compiled method reads them faster than module globals
        self.copy_context = contextvars.copy_context
        assert _enter_task is not None and _leave_task is not None  # SUPPORTED was checked
        self.enter_task = _enter_task
        self.leave_task = _leave_task

    def start(self, coro: RequestCoroutine) -> asyncio.Task[None] | None:
        """Run ``coro`` until it first waits; the task that runs the rest, or None when it
        finished (or raised CancelledError: a request coroutine answers for its other errors,
        and any that escapes propagates)."""
        loop = self.loop
        idle = self.idle
        if not idle:
            if not self.starting_host:
                self.starting_host = True
                Host(self)
            return self._start_plain(coro)
        host = idle.pop()
        task = host.task
        try:
            self.enter_task(loop, task)
        except RuntimeError:
            # another task is running this step (a request started from inside a task): no
            # host is lent there. Asking asyncio.current_task() first would cost every request
            # a Python-level call on 3.11.
            idle.append(host)
            return self._start_plain(coro)
        context = self.copy_context()
        try:
            # next() with a default: a coroutine that returns raises no StopIteration here,
            # which in compiled code would cost more than the rest of this method
            waiting_on = context.run(next, coro.__await__(), _FINISHED)
        except BaseException as exc:
            self.leave_task(loop, task)
            if not host.cancelled():
                idle.append(host)
            if isinstance(exc, asyncio.CancelledError):
                return None  # as a task that ends cancelled, without a word
            raise
        self.leave_task(loop, task)
        if waiting_on is _FINISHED:
            if not host.cancelled():
                idle.append(host)  # a host asked to cancel during the step is not lent again
            return None
        host.hand_over(Continuation(coro, context, waiting_on))
        if not self.starting_host:
            self.starting_host = True
            Host(self)
        return task

    def _start_plain(self, coro: RequestCoroutine) -> asyncio.Task[None] | None:
        task = self.plain(coro)
        return None if task.done() else task

    def close(self) -> None:
        """End the idle hosts (the worker is stopping; hosts running a request finish it)."""
        for host in self.idle[:]:
            host.task.cancel()


class PlainStarter:
    """A task per request coroutine, for Pythons where :class:`EagerStarter` cannot work."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.plain = plain_starter(loop)

    def start(self, coro: RequestCoroutine) -> asyncio.Task[None] | None:
        task = self.plain(coro)
        return None if task.done() else task

    def close(self) -> None:
        pass


def task_starter(loop: asyncio.AbstractEventLoop) -> EagerStarter | PlainStarter:
    """What starts request coroutines on ``loop``: :class:`EagerStarter` where supported."""
    return EagerStarter(loop) if SUPPORTED else PlainStarter(loop)

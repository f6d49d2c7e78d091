"""The WSGI runner: one :class:`WsgiCycle` per request, a ``Cycle`` of the connection's
contract (``prefork.workers.contract``) as the ASGI ``HttpCycle`` is.

Two ways to run the app, picked per worker by ``--threads``:

* **inline** (1, the default, gunicorn's sync worker): the body is collected first (spilled to
  a temporary file past 1 MiB), then the app is called on the loop thread and its iterable is
  walked inside ``run()``; between pieces the cycle waits for the transport to drain, so a
  large streamed response holds one piece in memory while the loop serves its other
  connections, timers and the heartbeat. A stuck app stops the loop, and the heartbeat
  watchdog replaces the worker (gunicorn's ``--timeout``).
* **threaded** (N > 1): the app and the walk of its iterable run in a pool of N threads;
  ``wsgi.input`` streams from the loop through a bounded buffer; every write hops to the loop
  (the engine is not thread-safe, so it is only touched there) and the app's thread waits for
  it, and while the transport is paused, so a fast app cannot outrun a slow client.

Inline, a request whose body is complete when its cycle starts (every GET) is answered from
``begin`` without a task: the app call, the head and the write all happen inside the protocol's
``data_received``. A one-piece list goes out in one write; any other iterable (a framework's
response object) is walked there too, and only when the transport is full or the walk has taken
``YIELD_INTERVAL`` does the rest continue in a task.

Either way the app runs as under gunicorn, with no event loop visible from its thread: Django
refuses ORM calls where ``asyncio.get_running_loop()`` answers (``SynchronousOnlyOperation``),
and ``asyncio.run()`` and asgiref's ``async_to_sync`` refuse to start there. A pool thread has
no loop; inline, the worker's loop is taken off the thread's record
(``asyncio._set_running_loop``, the hook asyncio gives loop implementations) for exactly the
calls into the app's code (the call, each step of its iterable, ``close()``) and put back
before anything of the server's runs; so is the task current in it, if any (the app is called
from a task after waiting for the body; ``asyncio.tasks._swap_current_task``, 3.12+), since
from 3.14 asyncio keeps the current task per thread and a loop the app starts could not step
its own tasks beside it. The worker never sets its loop as the thread's current one, so
``asyncio.get_event_loop()`` in an app behaves as in gunicorn's sync worker too.

Both ways answer the same: the head goes out with the first non-empty piece; a one-piece list
without ``Content-Length`` gets one (no chunked framing, one write); a regular file returned as
``wsgi.file_wrapper`` goes out through the protocol's ``send_file``. An exception before any
byte of the response went out is a 500 (traceback in the error log, never in the response);
after that the connection is aborted. The iterable's ``close()`` is always called, after the
response's last byte was handed to the connection and before the next request on the
connection starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from asyncio import _set_running_loop, current_task
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final

from prefork.errors import ClientDisconnected, LocalProtocolError
from prefork.http.connection import NO_UPGRADE
from prefork.http.events import Data, EndOfMessage, Request, Response
from prefork.logs.escape import escape
from prefork.workers.contract import (
    RESPONSE_COMPLETE,
    RESPONSE_NOT_STARTED,
    RESPONSE_STARTED,
    Connection,
    Cycle,
    Serving,
    Upgraded,
)
from prefork.workers.response import (
    body_broke,
    with_length,
    write_file_body,
    write_internal_error,
    write_whole,
)
from prefork.wsgi.environ import build_environ
from prefork.wsgi.filewrapper import file_span
from prefork.wsgi.input import EMPTY_INPUT, BodySpool, StreamingInput
from prefork.wsgi.responder import Responder, as_bytes

__all__ = ["WsgiCycle", "WsgiRunner"]

log = logging.getLogger("prefork.error")

_END: Final = EndOfMessage()
# An inline app's iterable that produces pieces without ever filling the socket still lets the
# loop run this often: other connections, timers, the heartbeat, and the news that this client
# left (a reset socket drops writes silently until the loop reports connection_lost).
YIELD_INTERVAL: Final = 0.005
_CONTENT_LENGTH: Final = b"content-length"

# What a threaded app call ends with; the loop finishes the response from it.
_DONE: Final = 0
_FAILED: Final = 1
_GONE: Final = 2
_SINGLE: Final = 3
_FILE: Final = 4
_NO_RESULT: Final = object()  # the inline app call raised, and the failure was answered
# Sets the loop's current task and returns the one before; 3.12 and later (asyncio's own eager
# tasks use it). Where it is missing the current task is kept per loop, and need not be hidden.
_swap_current_task: Callable[[asyncio.AbstractEventLoop, Any], Any] | None = getattr(
    asyncio.tasks, "_swap_current_task", None)


def _hide_loop(loop: asyncio.AbstractEventLoop) -> Any:
    """Take the running ``loop`` and its current task off this thread's record while the app's
    code runs; returns the task, for :func:`_show_loop`."""
    task = None
    swap = _swap_current_task
    if swap is not None:
        task = current_task(loop)
        if task is not None:
            swap(loop, None)
    _set_running_loop(None)
    return task


def _show_loop(loop: asyncio.AbstractEventLoop, task: Any) -> None:
    """Put back what :func:`_hide_loop` took off."""
    _set_running_loop(loop)
    swap = _swap_current_task
    if task is not None and swap is not None:
        swap(loop, task)


class WsgiRunner(Serving):
    """The WSGI interface of a worker: what every request shares (the environ template and
    the pool). gunicorn's meanings, which WSGI apps are written for: an Upgrade request is an
    ordinary request that the app answers (it sees HTTP_UPGRADE), and a trusted proxy's fields
    set wsgi.url_scheme but not REMOTE_ADDR or Host (the app reads HTTP_X_FORWARDED_FOR and
    HTTP_X_FORWARDED_HOST itself, as Django's settings do)."""

    def __init__(self, base_environ: dict[str, Any],
                 executor: concurrent.futures.ThreadPoolExecutor | None,
                 max_buffer: int) -> None:
        self.base_environ = base_environ
        self.executor = executor  # None: call the app inline on the loop thread
        self.max_buffer = max_buffer
        self.upgrades = NO_UPGRADE
        self.forwarded_client = False

    def cycle(self, connection: Connection, request: Request) -> Cycle:
        return WsgiCycle(connection, request, self)

    def upgrade(self, connection: Connection, request: Request) -> Upgraded:
        raise AssertionError("the engine switches to no protocol under WSGI")


def _write_after_end(data: bytes) -> None:
    raise RuntimeError("write() called after the response ended")


class WsgiCycle(Cycle):
    """One WSGI request; created by the protocol when a request head arrives."""

    __slots__ = (
        "_waiter", "body_complete", "disconnected", "environ", "input", "left", "loop",
        "protocol", "request", "responder", "response_state", "runner", "spool", "task",
    )  # fmt: skip

    def __init__(self, protocol: Connection, request: Request, runner: WsgiRunner) -> None:
        self.protocol = protocol
        self.loop = protocol.loop
        self.request = request
        self.runner = runner
        self.response_state = RESPONSE_NOT_STARTED
        self.environ: dict[str, Any] | None = None  # for post_request and the access log
        self.disconnected = False
        self.body_complete = False
        self.task: asyncio.Task[None] | None = None
        self.left: int | None = None  # body bytes the app's Content-Length still allows
        self.responder = Responder(self._write_inline)
        self._waiter: asyncio.Future[None] | None = None
        self.spool: BodySpool | None = None  # inline: made by the first body piece
        self.input: StreamingInput | None = None
        if runner.executor is not None:
            self.responder.sink = self._write_from_thread
            self.input = StreamingInput(
                self.loop.call_soon_threadsafe, runner.max_buffer,
                protocol.send_continue if request.expect_continue else None,
                protocol.body_consumed)

    # -- fed by the protocol --------------------------------------------------------------------

    @property
    def body_size(self) -> int:
        """Received body bytes the app has not taken yet (the inline spool takes them all)."""
        stream = self.input
        return stream.size if stream is not None else 0

    def body_received(self, data: bytes) -> None:
        if self.input is not None:
            self.input.feed(data)
            return
        spool = self.spool
        if spool is None:
            spool = self.spool = BodySpool()
        spool.append(data)

    def request_complete(self) -> None:
        self.body_complete = True
        if self.input is not None:
            self.input.finish()
        if self._waiter is not None:
            self._wake()

    def client_finished_sending(self) -> None:
        """EOF after a complete request (maybe a half-close): the response still goes out. A
        WSGI app cannot be told the client left before it answers, so nothing changes."""

    def client_gone(self) -> None:
        self.disconnected = True
        if self.input is not None:
            self.input.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- running the app ------------------------------------------------------------------------

    def begin(self, app: Callable[..., Any]) -> Coroutine[Any, Any, None] | None:
        """Start the cycle. Inline, with the whole request here (a GET), the app is called right
        away and its answer sent without a task while nothing needs waiting for: None once it
        completed. Otherwise the coroutine that the protocol runs as the cycle's task."""
        if self.runner.executor is not None or not self.body_complete or self.disconnected:
            return self.run(app)
        try:
            result = self._call_inline(app)
            if result is _NO_RESULT:
                self._complete()
                rest = None
            else:
                rest = self._answer(result)
        except BaseException:
            self._finished()
            raise
        if rest is not None:
            return self._then_finish(rest)
        self._finished()  # as a task's end would: the request is no longer in flight
        return None

    async def _then_finish(self, rest: Coroutine[Any, Any, None]) -> None:
        """The rest of an answer that ``begin`` started, then the cycle's end."""
        try:
            await rest
        finally:
            self._finished()

    async def run(self, app: Callable[..., Any]) -> None:
        try:
            if self.runner.executor is None:
                await self._run_inline(app)
            else:
                await self._run_threaded(app, self.runner.executor)
        finally:
            self._finished()

    def _finished(self) -> None:
        # The responder's sink is a method of this cycle: a reference cycle that would leave
        # every request's cycle, environ and request to the garbage collector (13 objects per
        # request, and a collection every ~50 requests, in bench/http_engine.py's WSGI row).
        self.responder.sink = _write_after_end
        if self.spool is not None:
            self.spool.close()
        if self.input is not None:
            self.input.abort()  # no reader may stay blocked on this request
        self.protocol.cycle_finished(self)

    def _environ(self, wsgi_input: Any) -> dict[str, Any]:
        protocol = self.protocol
        self.environ = build_environ(self.runner.base_environ, self.request,
                                     scheme=protocol.scheme, client=protocol.client,
                                     server=protocol.server, wsgi_input=wsgi_input)
        return self.environ

    # -- inline (--threads 1) -------------------------------------------------------------------

    async def _run_inline(self, app: Callable[..., Any]) -> None:
        if not self.body_complete and not self.disconnected:
            if self.request.expect_continue:
                self.protocol.send_continue()  # the whole body is wanted before the app runs
            while not self.body_complete and not self.disconnected:
                self._waiter = self.loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        if self.disconnected:
            return
        result = self._call_inline(app)
        if result is _NO_RESULT:
            self._complete()
            return
        rest = self._answer(result)
        if rest is not None:
            await rest

    def _call_inline(self, app: Callable[..., Any]) -> Any:
        """Call the app with the whole body spooled; _NO_RESULT when it raised (answered)."""
        spool = self.spool
        stream = spool.stream() if spool is not None else EMPTY_INPUT  # no body: every GET
        try:
            environ = self._environ(stream)
            task = _hide_loop(self.loop)  # the app's code sees no loop (the module docstring)
            try:
                return app(environ, self.responder.start_response)
            finally:
                _show_loop(self.loop, task)
        except Exception as exc:
            self._failed(exc)
            return _NO_RESULT

    def _answer(self, result: Any) -> Coroutine[Any, Any, None] | None:
        """Send the app's iterable on the loop thread, completing the cycle's response and
        closing the iterable: at once while nothing needs waiting for (None), else the
        coroutine that does the rest. A one-piece list is one write; a file goes out through
        ``send_file``, which waits; any other iterable (Flask's, Django's response) is walked
        here until the transport is full or the walk has taken ``YIELD_INTERVAL``."""
        responder = self.responder
        if responder.head is not None and not responder.headers_sent:
            if type(result) is list and len(result) == 1:
                try:
                    self._send_single(result[0])
                except Exception as exc:
                    self._failed(exc)
                self._complete()  # a list has no close()
                return None
            span = file_span(result)
            if span is not None:
                return self._send_file_result(result, *span)
        try:
            iterator = iter(result)
            if not self._send_pieces(iterator):
                return self._send_rest(result, iterator)
        except Exception as exc:
            self._failed(exc)
        except BaseException:
            self._close(result)
            raise
        self._close(result)
        self._complete()
        return None

    async def _send_rest(self, result: Any, iterator: Iterator[Any]) -> None:
        """The pieces of ``result`` that ``_answer`` could not send without waiting."""
        protocol = self.protocol
        try:
            while not self._send_pieces(iterator):
                if protocol.write_paused:
                    await protocol.drain()
                else:
                    await asyncio.sleep(0)  # the loop's turn: other connections, timers
        except Exception as exc:
            self._failed(exc)
        finally:
            self._close(result)
        self._complete()

    async def _send_file_result(self, result: Any, file: Any, offset: int, size: int) -> None:
        try:
            await self._send_file(file, offset, size)
        except Exception as exc:
            self._failed(exc)
        finally:
            self._close(result)
        self._complete()

    def _send_pieces(self, iterator: Iterator[Any]) -> bool:
        """Send pieces of the app's iterable until it ends (True; the response is finished)
        or until the transport is full or the loop is due a turn (False)."""
        protocol = self.protocol
        loop = self.loop
        due = loop.time() + YIELD_INTERVAL
        # Each step of the iterable is the app's code (a streamed queryset, a generator); the
        # writes between them only hand bytes to the transport, which needs no running loop.
        task = _hide_loop(loop)
        try:
            for piece in iterator:
                if self.disconnected:
                    return True
                if type(piece) is not bytes:
                    piece = as_bytes(piece)
                if piece:
                    self._emit(piece)
                    if protocol.write_paused or loop.time() > due:
                        return False
        finally:
            _show_loop(loop, task)
        if not self.disconnected:
            self._finish()
        return True

    def _write_inline(self, data: bytes) -> None:
        # The legacy write() on the loop thread cannot wait for the transport to drain: what
        # it writes is buffered by the transport (PEP 3333 discourages write() for this reason).
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        self._emit(data)

    # -- threaded (--threads N) -----------------------------------------------------------------

    async def _run_threaded(self, app: Callable[..., Any],
                            executor: concurrent.futures.ThreadPoolExecutor) -> None:
        assert self.input is not None
        environ = self._environ(self.input)
        outcome, value = await self.loop.run_in_executor(executor, self._call_app, app, environ)
        if outcome == _FAILED:
            self._failed(value)
        elif outcome == _SINGLE:
            try:
                self._send_single(value)
            except Exception as exc:
                self._failed(exc)
        elif outcome == _FILE:
            result, span = value
            try:
                await self._send_file(*span)
            except Exception as exc:
                self._failed(exc)
            finally:
                self._close(result)
        self._complete()

    def _call_app(self, app: Callable[..., Any], environ: dict[str, Any]) -> tuple[int, Any]:
        """In a pool thread: call the app and walk its iterable, sending through the loop."""
        responder = self.responder
        try:
            result = app(environ, responder.start_response)
        except Exception as exc:
            return _FAILED, exc
        if not responder.headers_sent and responder.head is not None:
            if type(result) is list and len(result) == 1:
                return _SINGLE, result[0]  # a list has no close()
            span = file_span(result)
            if span is not None:
                return _FILE, (result, span)  # the loop sends it, then closes it
        outcome: tuple[int, Any] = (_DONE, None)
        try:
            for piece in result:
                if type(piece) is not bytes:
                    piece = as_bytes(piece)
                if piece:
                    responder.headers_sent = True
                    self._write_from_thread(piece)
            self._on_loop(self._finish_threaded)
        except ClientDisconnected:
            outcome = _GONE, None
        except Exception as exc:
            outcome = _FAILED, exc
        finally:
            self._close(result, on_loop=False)
        return outcome

    def _write_from_thread(self, data: bytes) -> None:
        self._on_loop(self._emit_and_drain, data)

    def _on_loop(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function`` on the loop and wait for it (and for the coroutine it may return);
        its exception is raised here. Raises ClientDisconnected once the client left."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def call() -> None:
            try:
                waiting = function(*args)
            except BaseException as exc:
                future.set_exception(exc)
                return
            if waiting is None:
                future.set_result(None)
            else:
                task = self.loop.create_task(waiting)
                task.add_done_callback(lambda _: future.set_result(None))

        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        self.loop.call_soon_threadsafe(call)
        future.result()
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")

    def _emit_and_drain(self, data: bytes) -> Any:
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        self._emit(data)
        protocol = self.protocol
        return protocol.drain() if protocol.write_paused else None

    def _finish_threaded(self) -> None:
        if not self.disconnected:
            self._finish()

    # -- on the loop: turning the response into bytes ------------------------------------------

    def _head(self, head: Response, body: bytes = b"") -> bytes:
        """The head's bytes; the response is started from here on (or failed: see _failed)."""
        responder = self.responder
        responder.headers_sent = True
        out = self.protocol.conn.send(head)
        self.response_state = RESPONSE_STARTED
        self.left = responder.content_length
        return out

    def _head_if_due(self, misuse: str) -> bytes:
        """The response head when it has not gone out yet, else nothing; ``misuse`` names
        what the app did if it never called ``start_response``."""
        if self.response_state != RESPONSE_NOT_STARTED:
            return b""
        head = self.responder.head
        if head is None:
            raise RuntimeError(f"the application {misuse} start_response")
        return self._head(head)

    def _emit(self, data: bytes) -> None:
        """Write ``data`` as body bytes, after the head if it has not gone out yet."""
        conn = self.protocol.conn
        out = self._head_if_due("sent body bytes before")
        left = self.left
        if left is not None:
            # Bytes past the app's Content-Length are dropped, as gunicorn does: a file wrapper
            # over a whole file with the length of a part is a common way to send the part.
            if len(data) > left:
                data = data[:left]
            self.left = left - len(data)
        self.protocol.write(out + conn.send(Data(data)) if data else out)

    def _finish(self) -> None:
        """Write the end of the response (and its head, for an empty body)."""
        conn = self.protocol.conn
        out = self._head_if_due("returned without calling")
        out += conn.send(_END)
        self.response_state = RESPONSE_COMPLETE
        self.protocol.write(out)

    def _send_single(self, piece: Any) -> None:
        """A one-piece body: head, body and end in one write, with a Content-Length (a large
        body is written beside its head rather than copied into one buffer with it)."""
        if type(piece) is not bytes:
            piece = as_bytes(piece)
        responder = self.responder
        head = responder.head
        assert head is not None
        if responder.content_length is None and piece and self.request.method != b"HEAD":
            head = Response(head.status_code,
                            [*head.headers, (_CONTENT_LENGTH, b"%d" % len(piece))], head.reason)
        if responder.content_length is not None and len(piece) > responder.content_length:
            piece = piece[:responder.content_length]  # as _emit
        responder.headers_sent = True
        try:
            write_whole(self.protocol, head, piece)
        except LocalProtocolError:
            if body_broke(self.protocol):  # the head was accepted; the body broke its length
                self.response_state = RESPONSE_STARTED
            raise
        self.response_state = RESPONSE_COMPLETE

    async def _send_file(self, file: Any, offset: int, size: int) -> None:
        """A FileWrapper over a regular file: ``Content-Length`` from the file (or the app's, if
        shorter) and the bytes through the protocol's ``send_file``."""
        responder = self.responder
        head = responder.head
        assert head is not None and file is not None
        count = size if responder.content_length is None else min(size,
                                                                   responder.content_length)
        out = self._head(with_length(head, responder.content_length
                                     if responder.content_length is not None else count))
        protocol = self.protocol
        if not await write_file_body(protocol, out, file, count, offset) \
                and not self.disconnected:
            raise LocalProtocolError("the file shrank while it was sent", 500)
        if not self.disconnected:
            out = protocol.conn.send(_END)
            self.response_state = RESPONSE_COMPLETE
            protocol.write(out)

    def _failed(self, exc: BaseException) -> None:
        """The app (or its iterable) raised: 500 if nothing went out yet, else abort."""
        if self.disconnected:
            if not isinstance(exc, OSError):
                log.error("Error handling request %s (client gone)", self._label(), exc_info=exc)
            return
        log.error("Error handling request %s", self._label(), exc_info=exc)
        protocol = self.protocol
        if self.response_state == RESPONSE_NOT_STARTED:
            if write_internal_error(protocol):
                self.response_state = RESPONSE_COMPLETE
        elif self.response_state == RESPONSE_STARTED:
            protocol.abort()

    def _close(self, result: Any, on_loop: bool = True) -> None:
        """Call the iterable's ``close()`` (Django's sends ``request_finished``, which closes
        database connections through the ORM): on the loop's thread with the loop hidden."""
        close = getattr(result, "close", None)
        if close is None:
            return
        try:
            task = _hide_loop(self.loop) if on_loop else None
            try:
                close()
            finally:
                if on_loop:
                    _show_loop(self.loop, task)
        except Exception as exc:
            log.error("Error closing the response of %s", self._label(), exc_info=exc)

    def _complete(self) -> None:
        if self.input is not None:
            self.input.discard()  # an answer before the body was read: the protocol drops the rest
        if self.response_state == RESPONSE_COMPLETE and not self.disconnected:
            self.protocol.response_complete()

    def _label(self) -> str:
        request = self.request
        return escape(f"{request.method.decode('latin-1')} {request.target.decode('latin-1')}")

"""The task a request's app runs in (``prefork.workers.eager``): its own from the first step to
the last, a fresh context each, cancellation and timeouts as in a task of its own, and no task
made for a handler that never waits. Both parsers, uvloop and plain asyncio."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.timeout(20)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def answer(send: Any, body: str) -> None:
    data = body.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(data))]})
    await send({"type": "http.response.body", "body": data})


def current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


async def same_task_across_awaits(scope: dict[str, Any], receive: Any, send: Any) -> None:
    before = current()
    await asyncio.sleep(0.01)
    after = current()
    await answer(send, f"{before is after} {after.done()}")


def test_a_waiting_handler_keeps_its_task(serve: Any, client_factory: Any) -> None:
    client = client_factory(serve(same_task_across_awaits).port)
    for _ in range(3):
        assert client.request().body == b"True False"


async def context_per_request(scope: dict[str, Any], receive: Any, send: Any) -> None:
    seen = request_id.get()
    request_id.set(scope["path"])
    if scope["path"].startswith("/wait"):
        await asyncio.sleep(0.001)
        assert request_id.get() == scope["path"]  # kept across the handler's own awaits
    await answer(send, seen)


@pytest.mark.parametrize("paths", [("/a", "/b"), ("/wait-a", "/wait-b"), ("/a", "/wait-b"),
                                   ("/wait-a", "/b")])
def test_each_request_starts_in_a_fresh_context(serve: Any, client_factory: Any,
                                                paths: tuple[str, str]) -> None:
    client = client_factory(serve(context_per_request).port)
    for path in paths:
        assert client.request("GET", path).body == b"unset"


async def times_out(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What ``asyncio.timeout`` and anyio's deadlines do: a timer cancels the waiting task."""
    timer = asyncio.get_running_loop().call_later(0.05, current().cancel)
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        await answer(send, "timed out")
    finally:
        timer.cancel()


def test_a_timer_cancelling_the_task_reaches_the_waiting_handler(serve: Any,
                                                                 client_factory: Any) -> None:
    client = client_factory(serve(times_out).port)
    assert client.request().body == b"timed out"
    assert client.request().body == b"timed out"


async def cancels_itself(scope: dict[str, Any], receive: Any, send: Any) -> None:
    task = current()
    if scope["path"] == "/cancel-then-wait":
        task.cancel()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            await answer(send, "cancelled")
            return
        await answer(send, "not cancelled")
    elif scope["path"] == "/cancel-then-return":
        task.cancel()
        await answer(send, "returned")
    else:
        cancelling = getattr(task, "cancelling", lambda: 0)()
        await asyncio.sleep(0)
        await answer(send, f"cancelling {cancelling}")


@pytest.mark.parametrize("path, body", [("/cancel-then-wait", b"cancelled"),
                                        ("/cancel-then-return", b"returned")])
def test_a_handler_that_cancels_its_own_task(serve: Any, client_factory: Any, path: str,
                                             body: bytes) -> None:
    """It gets the cancellation at its next wait, as in a task of its own; the requests after
    it run in tasks that were never cancelled."""
    client = client_factory(serve(cancels_itself).port)
    assert client.request("GET", path).body == body
    assert client.request("GET", "/").body == b"cancelling 0"
    assert client.request("GET", path).body == body
    assert client.request("GET", "/").body == b"cancelling 0"


def test_waiting_handlers_each_have_their_own_task(serve: Any, client_factory: Any) -> None:
    tasks: set[int] = set()
    lock = threading.Lock()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = current()
        await asyncio.sleep(0.1)
        with lock:
            tasks.add(id(task))
        await answer(send, "ok")

    server = serve(app)
    clients = [client_factory(server.port) for _ in range(12)]
    for client in clients:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [client.response().body for client in clients] == [b"ok"] * 12
    assert len(tasks) == 12  # all waiting at once: none shared a task


def test_anyio_cancel_scope_in_a_handler(serve: Any, client_factory: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        with anyio.move_on_after(0.02) as moved_on:
            await anyio.sleep(5)
        with anyio.CancelScope():  # entered and left without waiting
            pass
        await answer(send, f"moved on {moved_on.cancel_called}")

    client = client_factory(serve(app).port)
    assert client.request().body == b"moved on True"
    assert client.request().body == b"moved on True"


def test_a_handler_that_never_waits_makes_no_task(serve: Any, client_factory: Any) -> None:
    """Sequential requests that never wait are all lent the same idle host task."""
    hosts: list[asyncio.Task[Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        hosts.append(current())
        await answer(send, "ok")

    client = client_factory(serve(app).port)
    for _ in range(5):
        assert client.request().body == b"ok"
    assert len({id(task) for task in hosts[1:]}) == 1  # the first may start the pool
    assert not hosts[-1].done()


def test_a_pipelined_request_started_by_a_waiting_one_has_its_own_task(
        serve: Any, client_factory: Any) -> None:
    """The second request starts inside the first one's task (when its answer is done): no host
    can be lent there, so it gets a task of its own."""
    tasks: dict[str, asyncio.Task[Any]] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tasks[scope["path"]] = current()
        if scope["path"] == "/wait":
            await asyncio.sleep(0.01)
        await answer(send, scope["path"])

    client = client_factory(serve(app).port)
    client.send(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.response().body == b"/wait"
    assert client.response().body == b"/next"
    assert tasks["/wait"] is not tasks["/next"]
    assert client.request("GET", "/after").body == b"/after"

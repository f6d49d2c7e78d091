"""Unit tests for prefork.asgi.lifespan: small ASGI apps on real loops (asyncio and uvloop)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from prefork.asgi.lifespan import Lifespan
from prefork.errors import BootError

pytestmark = pytest.mark.timeout(10)

APPS_DIR = Path(__file__).parent / "apps"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Runner = Callable[[Coroutine[Any, Any, Any]], Any]

LOOPS = ["asyncio"]
if sys.platform != "win32":
    LOOPS.append("uvloop")


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """Run a coroutine to completion on a fresh loop; fail on any error the loop reports."""
    if request.param == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))

    def runner(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return loop.run_until_complete(coroutine)

    try:
        yield runner
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        assert not leftovers, f"tasks left running: {leftovers}"
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert not loop_errors, loop_errors


@pytest.fixture
def sample_apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(APPS_DIR))
    yield
    for name in [name for name in sys.modules if name.startswith("sample_")]:
        del sys.modules[name]


class RecordingApp:
    """A lifespan app scripted per phase: 'complete', 'fail', 'raise', 'hang' or 'return'."""

    def __init__(self, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.scopes: list[Scope] = []
        self.received: list[str] = []
        self.cancelled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        try:
            for phase, action in (("startup", self.startup), ("shutdown", self.shutdown)):
                message = await receive()
                self.received.append(message["type"])
                assert message["type"] == f"lifespan.{phase}"
                if action == "complete":
                    scope["state"][phase] = True
                    await send({"type": f"lifespan.{phase}.complete"})
                elif action == "fail":
                    reason = f"{phase} broke\nbadly"
                    await send({"type": f"lifespan.{phase}.failed", "message": reason})
                    return
                elif action == "raise":
                    raise RuntimeError(f"{phase} exploded")
                elif action == "hang":
                    await asyncio.Event().wait()
                else:
                    return
        except asyncio.CancelledError:
            self.cancelled = True
            raise


# -- startup -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_full_cycle(run: Runner, mode: str) -> None:
    app = RecordingApp()
    lifespan = Lifespan(app, mode=mode)

    async def main() -> None:
        await lifespan.startup()
        assert lifespan.supported is True
        await lifespan.shutdown()

    run(main())
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]
    assert lifespan.state == {"startup": True, "shutdown": True}


def test_scope_and_state_propagation(run: Runner) -> None:
    app = RecordingApp()
    shared: dict[str, Any] = {"preset": 1}
    lifespan = Lifespan(app, state=shared)
    run(lifespan.startup())
    (scope,) = app.scopes
    assert scope["type"] == "lifespan"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
    assert scope["state"] is shared
    assert lifespan.state is shared
    assert shared == {"preset": 1, "startup": True}
    run(lifespan.shutdown())


def test_default_state_is_a_fresh_dict() -> None:
    first, second = Lifespan(RecordingApp()), Lifespan(RecordingApp())
    assert first.state == {}
    assert first.state is not second.state


def test_sample_app_startup_and_shutdown(run: Runner, sample_apps: None) -> None:
    app = importlib.import_module("sample_asgi").app
    lifespan = Lifespan(app, mode="on")
    run(lifespan.startup())
    assert lifespan.state == {"started": True}
    run(lifespan.shutdown())


def test_unsupported_app_is_ignored_in_auto(
    run: Runner, sample_apps: None, caplog: pytest.LogCaptureFixture
) -> None:
    app = importlib.import_module("sample_no_lifespan").app
    lifespan = Lifespan(app, mode="auto")
    with caplog.at_level(logging.DEBUG, logger="prefork"):
        run(lifespan.startup())
        run(lifespan.shutdown())
    assert lifespan.supported is False
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert "ValueError: only http is handled, not lifespan" in record.getMessage()


def test_unsupported_app_fails_in_on(run: Runner, sample_apps: None) -> None:
    app = importlib.import_module("sample_no_lifespan").app
    with pytest.raises(BootError) as info:
        run(Lifespan(app, mode="on").startup())
    assert str(info.value) == (
        "lifespan startup failed: ValueError: only http is handled, not lifespan"
    )
    assert isinstance(info.value.__cause__, ValueError)


def test_off_mode_never_calls_the_app(run: Runner) -> None:
    app = RecordingApp()
    lifespan = Lifespan(app, mode="off")
    run(lifespan.startup())
    run(lifespan.shutdown())
    assert app.scopes == []
    assert lifespan.supported is False


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_message(run: Runner, mode: str) -> None:
    with pytest.raises(BootError) as info:
        run(Lifespan(RecordingApp(startup="fail"), mode=mode).startup())
    assert str(info.value) == "lifespan startup failed: startup broke badly"


def test_startup_failed_without_message(run: Runner) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed"})

    with pytest.raises(BootError, match="lifespan startup failed: no message given"):
        run(Lifespan(app).startup())


def test_failed_app_still_waiting_is_cancelled(run: Runner) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no"})
        await receive()  # never answered

    with pytest.raises(BootError):
        run(Lifespan(app).startup())


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_exception_after_receiving(run: Runner, mode: str) -> None:
    with pytest.raises(BootError) as info:
        run(Lifespan(RecordingApp(startup="raise"), mode=mode).startup())
    assert str(info.value) == "lifespan startup failed: RuntimeError: startup exploded"
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_timeout(run: Runner, mode: str) -> None:
    app = RecordingApp(startup="hang")
    with pytest.raises(BootError, match=r"did not complete within 0\.05 seconds"):
        run(Lifespan(app, mode=mode, startup_timeout=0.05).startup())
    assert app.cancelled


def test_app_returning_at_once(run: Runner) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    auto = Lifespan(app, mode="auto")
    run(auto.startup())
    assert auto.supported is False
    with pytest.raises(BootError, match=r"returned without sending 'lifespan\.startup\.complete'"):
        run(Lifespan(app, mode="on").startup())


def test_app_returning_after_receiving_startup(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    app = RecordingApp(startup="return")
    with caplog.at_level(logging.WARNING, logger="prefork"):
        run(Lifespan(app, mode="auto").startup())
    assert "without sending 'lifespan.startup.complete'" in caplog.text
    with pytest.raises(BootError, match="returned without sending"):
        run(Lifespan(RecordingApp(startup="return"), mode="on").startup())


def test_out_of_order_message_is_a_boot_error(run: Runner) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    with pytest.raises(BootError, match=r"unexpected ASGI message 'lifespan\.shutdown\.complete'"):
        run(Lifespan(app).startup())


def test_invalid_mode() -> None:
    with pytest.raises(ValueError, match="lifespan mode must be one of auto, on, off"):
        Lifespan(RecordingApp(), mode="yes")


# -- shutdown ------------------------------------------------------------------------------------


def start(run: Runner, app: RecordingApp, **options: Any) -> Lifespan:
    lifespan = Lifespan(app, logger=logging.getLogger("prefork.test.lifespan"), **options)
    run(lifespan.startup())
    return lifespan


def test_shutdown_failed_message_is_logged(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    lifespan = start(run, RecordingApp(shutdown="fail"))
    with caplog.at_level(logging.ERROR, logger="prefork"):
        run(lifespan.shutdown())
    assert "ASGI lifespan shutdown failed: shutdown broke badly" in caplog.text


def test_shutdown_exception_is_logged(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    lifespan = start(run, RecordingApp(shutdown="raise"))
    with caplog.at_level(logging.ERROR, logger="prefork"):
        run(lifespan.shutdown())
    (record,) = caplog.records
    assert record.getMessage() == "ASGI lifespan shutdown failed: RuntimeError: shutdown exploded"
    assert record.exc_info is not None


def test_shutdown_timeout_is_logged_and_cancels(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    app = RecordingApp(shutdown="hang")
    lifespan = start(run, app, shutdown_timeout=0.05)
    with caplog.at_level(logging.ERROR, logger="prefork"):
        run(lifespan.shutdown())
    assert "shutdown did not complete within 0.05 seconds" in caplog.text
    assert app.cancelled


def test_app_returning_on_shutdown_is_fine(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    lifespan = start(run, RecordingApp(shutdown="return"))
    with caplog.at_level(logging.DEBUG, logger="prefork"):
        run(lifespan.shutdown())
    assert caplog.records == []


def test_app_dying_while_serving_is_logged_at_shutdown(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise RuntimeError("background job died")

    lifespan = Lifespan(app, logger=logging.getLogger("prefork.test.lifespan"))

    async def main() -> None:
        await lifespan.startup()
        await asyncio.sleep(0)  # let the app run on and die
        await lifespan.shutdown()

    with caplog.at_level(logging.ERROR, logger="prefork"):
        run(main())
    assert "ended before shutdown: RuntimeError: background job died" in caplog.text


def test_shutdown_is_idempotent_and_safe_without_startup(run: Runner) -> None:
    app = RecordingApp()
    never_started = Lifespan(app)
    run(never_started.shutdown())
    assert app.scopes == []
    lifespan = start(run, app)
    run(lifespan.shutdown())
    run(lifespan.shutdown())
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]


def test_no_shutdown_after_failed_startup(run: Runner) -> None:
    app = RecordingApp(startup="fail")
    lifespan = Lifespan(app)
    with pytest.raises(BootError):
        run(lifespan.startup())
    run(lifespan.shutdown())
    assert app.received == ["lifespan.startup"]

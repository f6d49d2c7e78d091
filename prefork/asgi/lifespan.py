"""The ASGI lifespan protocol, run once per worker around serving.

``startup()`` starts the app with a ``lifespan`` scope in a task of its own, hands it
``lifespan.startup`` and waits for ``lifespan.startup.complete``; ``shutdown()`` hands it
``lifespan.shutdown`` and waits for ``lifespan.shutdown.complete``
(https://asgi.readthedocs.io/en/latest/specs/lifespan.html).

Modes (``--lifespan``):

* ``"on"``: the app must take part; any failure before startup completes is a :class:`BootError`.
* ``"auto"``: an app that raises before asking for its first message, or returns without asking,
  does not speak lifespan (Django raises ``ValueError`` on any scope but http): logged at debug
  level and ignored. Once it has asked, failures are :class:`BootError` as in ``"on"``.
* ``"off"``: nothing runs.

Rule: ``startup()`` raises only :class:`BootError`, with a one-line message; ``shutdown()`` never
raises, it logs. ``state`` is the dict the app fills during startup; the request scopes get a
shallow copy of it, as the spec asks. Without an injected logger it logs to ``prefork.error``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prefork.errors import BootError

__all__ = ["LIFESPAN_MODES", "Lifespan"]

LIFESPAN_MODES = ("auto", "on", "off")

Message = MutableMapping[str, Any]
# An ASGI 3 app: app(scope, receive, send). Kept loose: apps annotate their arguments many ways.
ASGIApp = Callable[..., Awaitable[Any]]

# What the app may send in each phase, and the phase that message moves to. Anything else is
# a protocol error raised inside the app's ``send``, where its author will see it.
_TRANSITIONS: dict[tuple[str, str], str] = {
    ("starting", "lifespan.startup.complete"): "started",
    ("starting", "lifespan.startup.failed"): "failed",
    ("stopping", "lifespan.shutdown.complete"): "stopped",
    ("stopping", "lifespan.shutdown.failed"): "stopped",
}

# How long a cancelled app task gets to unwind after a timeout before we stop waiting for it.
_CANCEL_GRACE = 1.0


class Lifespan:
    """Drives one app through lifespan startup and shutdown on the running loop."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: str = "auto",
        state: dict[str, Any] | None = None,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if mode not in LIFESPAN_MODES:
            raise ValueError(f"lifespan mode must be one of {', '.join(LIFESPAN_MODES)}: {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = state if state is not None else {}
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.logger = logger or logging.getLogger("prefork.error")
        self.supported: bool | None = None  # None until startup tells
        self._phase = "idle"
        self._asked = False  # the app called receive() at least once
        self._failure_message = ""
        self._error: BaseException | None = None
        # The messages for the app, and its receive() calls waiting for one. Futures rather
        # than asyncio.Queue, Event and wait_for: each worker runs this once, and those classes'
        # first use in a fresh worker touches (and copies) about 0.2 MB more of the pages it
        # shares with the arbiter.
        self._inbox: collections.deque[Message] = collections.deque()
        self._receivers: collections.deque[asyncio.Future[Message]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Future[None] | None = None  # done once the phase may have moved

    @property
    def scope(self) -> dict[str, Any]:
        """The lifespan scope handed to the app."""
        return {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }

    async def startup(self) -> None:
        """Run the app's startup; BootError when it fails, times out or (mode "on") is missing."""
        if self.mode == "off":
            self.supported = False
            return
        self._phase = "starting"
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lifespan")
        self._deliver({"type": "lifespan.startup"})
        if not await self._settle("starting", self.startup_timeout):
            await self._cancel()
            raise BootError(
                f"lifespan startup did not complete within {self.startup_timeout:g} seconds"
            )
        if self._phase == "started":
            self.supported = True
            return
        if self._phase == "failed":
            self.supported = True
            await self._cancel()  # it may still wait for a message that will never come
            reason = _one_line(self._failure_message) or "no message given"
            raise BootError(f"lifespan startup failed: {reason}")
        # The app returned or raised before completing startup.
        if not self._asked and self.mode == "auto":
            self.supported = False
            self.logger.debug(
                "ASGI lifespan not supported by the app (%s); going on without it",
                _describe_error(self._error) if self._error else "returned at once",
            )
            return
        if self._error is not None:
            raise BootError(
                f"lifespan startup failed: {_describe_error(self._error)}"
            ) from self._error
        if self.mode == "on":
            raise BootError(
                "lifespan startup failed: the app returned without sending "
                "'lifespan.startup.complete'"
            )
        self.supported = False
        self.logger.warning(
            "ASGI app returned during lifespan startup without sending "
            "'lifespan.startup.complete'; going on without lifespan"
        )

    async def shutdown(self) -> None:
        """Run the app's shutdown; logs what goes wrong and never raises."""
        if self._phase != "started" or self._task is None:
            return
        if self._task.done():
            self._phase = "stopped"
            if self._error is not None:
                self.logger.error(
                    "ASGI lifespan task ended before shutdown: %s",
                    _describe_error(self._error),
                    exc_info=self._error,
                )
            return
        self._phase = "stopping"
        self._deliver({"type": "lifespan.shutdown"})
        if not await self._settle("stopping", self.shutdown_timeout):
            await self._cancel()
            self.logger.error(
                "ASGI lifespan shutdown did not complete within %g seconds", self.shutdown_timeout
            )
            return
        if self._failure_message:
            reason = _one_line(self._failure_message) or "no message given"
            self.logger.error("ASGI lifespan shutdown failed: %s", reason)
        elif self._error is not None:
            self.logger.error(
                "ASGI lifespan shutdown failed: %s",
                _describe_error(self._error),
                exc_info=self._error,
            )
        self._phase = "stopped"

    # -- the app's side ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error = exc
        finally:
            self._signal()

    async def _receive(self) -> Message:
        self._asked = True
        if self._inbox:
            return self._inbox.popleft()
        receiver: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._receivers.append(receiver)
        return await receiver

    async def _send(self, message: Message) -> None:
        message_type = message.get("type")
        next_phase = _TRANSITIONS.get((self._phase, str(message_type)))
        if next_phase is None:
            raise RuntimeError(
                f"unexpected ASGI message {message_type!r} in lifespan phase {self._phase!r}"
            )
        if message_type in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failure_message = str(message.get("message", ""))
        self._phase = next_phase
        self._signal()

    # -- helpers ----------------------------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        """Hand ``message`` to a receive() waiting for one, else keep it for the next."""
        while self._receivers:
            receiver = self._receivers.popleft()
            if not receiver.done():  # not cancelled with the app's task
                receiver.set_result(message)
                return
        self._inbox.append(message)

    def _signal(self) -> None:
        changed = self._changed
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def _settle(self, phase: str, timeout: float) -> bool:
        """Wait until the app leaves ``phase`` (by a message) or ends; False on timeout."""
        assert self._task is not None
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._signal()

        timer = loop.call_later(timeout, expire)
        try:
            while self._phase == phase and not self._task.done() and not expired:
                self._changed = loop.create_future()
                await self._changed
        finally:
            timer.cancel()
            self._changed = None
        return self._phase != phase or self._task.done()

    async def _cancel(self) -> None:
        assert self._task is not None
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=_CANCEL_GRACE)


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _describe_error(exc: BaseException) -> str:
    message = _one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__

"""The restart policy: when a dead worker's slot may be forked again, and when to stop forking.

The arbiter reports what happened (a worker exited, became ready, was forked) and asks what to do
(``may_fork()``, ``fork_delay(slot)``, ``next_wakeup()``). Two mechanisms decide:

* **Backoff, per slot.** The first crash of a slot is replaced at once; each further consecutive
  crash waits ``base``, ``2*base``, ``4*base`` ... up to ``cap``. A worker that served (reported
  ready) for at least ``backoff_reset`` seconds wipes its slot's history, so a crash once a day is
  always replaced at once.
* **Circuit breaker, for the whole server.** ``breaker_threshold`` boot failures (workers that
  exited before reporting ready) within ``breaker_window`` seconds open it: no fork at all. After
  ``breaker_cooldown`` it half-opens and allows exactly one trial fork; the trial reporting ready
  closes it, the trial crashing opens it again with a fresh cool-down.

The breaker is for boot crash loops (a bad deploy, a database unreachable at start-up), where
every fork fails at once and forking more only burns CPU. A worker that reported ready and then
died was killed by something it served (``os._exit`` in a handler, a segfault, the OOM killer):
it does not count, since requests must never be able to stop the server; its slot is refilled
with the backoff above, which bounds the fork rate.

Exits we asked for (graceful stop, recycle after ``--max-requests``, scale-down) are never crashes:
they cause no backoff and do not count towards the breaker.

Rule: this module is pure. It imports no asyncio, socket, selectors, threading or os (a unit test
enforces it), reads the time only through the injected ``clock``, and never sleeps.
"""

from __future__ import annotations

import collections
import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefork.errors import ConfigError

if TYPE_CHECKING:
    from prefork.config import Config

__all__ = [
    "WORKER_TRANSITIONS",
    "BootFailureReports",
    "BreakerState",
    "RestartPolicy",
    "RestartSettings",
    "WorkerState",
]


class WorkerState(enum.Enum):
    """Where a live worker is in its life, as the arbiter sees it."""

    BOOTING = "booting"  # forked, has not reported ready on its control pair yet
    SERVING = "serving"  # reported ready; accepts connections
    DRAINING = "draining"  # asked to stop (SIGTERM); finishes in-flight requests, accepts nothing


# The only moves a live worker makes. A worker can be asked to drain while it still boots (a
# reload or scale-down right after a fork); the exit itself is an event, not a state.
WORKER_TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.BOOTING: frozenset({WorkerState.SERVING, WorkerState.DRAINING}),
    WorkerState.SERVING: frozenset({WorkerState.DRAINING}),
    WorkerState.DRAINING: frozenset(),
}


class BreakerState(enum.Enum):
    """The circuit breaker's state."""

    CLOSED = "closed"  # forks allowed
    OPEN = "open"  # too many crashes: no forks until the cool-down has passed
    HALF_OPEN = "half-open"  # cool-down over: one trial fork decides


class BootFailureReports:
    """Which worker boot failures were already reported in full.

    A worker that cannot load the app fails the same way in every replacement the restart
    policy forks; the first report carries the traceback, the repeats say "same error as
    before" in one line. Remembers the last ``limit`` distinct failures (a handful of
    alternating errors still counts as repeats, and memory stays bounded)."""

    def __init__(self, limit: int = 16) -> None:
        self._limit = limit
        self._seen: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()

    def is_new(self, reason: str, details: str) -> bool:
        """True the first time ``(reason, details)`` is seen; records it."""
        key = (reason, details)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class RestartSettings:
    """The knobs of :class:`RestartPolicy`, validated on creation (times in seconds)."""

    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    backoff_reset: float = 30.0
    breaker_threshold: int = 5
    breaker_window: float = 60.0
    breaker_cooldown: float = 30.0

    @classmethod
    def from_config(cls, config: Config) -> RestartSettings:
        return cls(
            backoff_base=config.restart_backoff_base,
            backoff_cap=config.restart_backoff_cap,
            backoff_reset=config.restart_backoff_reset,
            breaker_threshold=config.breaker_threshold,
            breaker_window=config.breaker_window,
            breaker_cooldown=config.breaker_cooldown,
        )

    def __post_init__(self) -> None:
        for name in ("backoff_base", "backoff_cap", "backoff_reset", "breaker_cooldown"):
            _require(name, getattr(self, name), minimum=0.0)
        _require("breaker_window", self.breaker_window, minimum=0.0, exclusive=True)
        if isinstance(self.breaker_threshold, bool) or not isinstance(self.breaker_threshold, int):
            raise ConfigError("breaker_threshold must be an integer")
        if self.breaker_threshold < 1:
            raise ConfigError("breaker_threshold must be >= 1")
        if self.backoff_cap < self.backoff_base:
            raise ConfigError("restart_backoff_cap must be >= restart_backoff_base")


def _require(name: str, value: object, *, minimum: float, exclusive: bool = False) -> None:
    """Check that a setting is a finite number above ``minimum``; the message names the setting."""
    setting = name if name.startswith("breaker_") else f"restart_{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{setting} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ConfigError(f"{setting} must be a finite number, got {value!r}")
    if exclusive and value <= minimum:
        raise ConfigError(f"{setting} must be > {minimum:g}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{setting} must be >= {minimum:g}, got {value!r}")


class _SlotHistory:
    """Backoff bookkeeping of one worker slot."""

    __slots__ = ("consecutive_crashes", "not_before")

    def __init__(self) -> None:
        self.consecutive_crashes = 0
        self.not_before = 0.0  # absolute clock time before which the slot may not be re-forked


class RestartPolicy:
    """Backoff per slot plus one circuit breaker; see the module docstring for the rules."""

    def __init__(
        self, settings: RestartSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._slots: dict[int, _SlotHistory] = {}
        self._crash_times: collections.deque[float] = collections.deque()
        self._state = BreakerState.CLOSED
        self._opened_at: float | None = None
        self._trial_slot: int | None = None

    # -- what the arbiter reports ---------------------------------------------------------------

    def record_exit(self, slot: int, *, crashed: bool, lifetime: float, was_ready: bool) -> None:
        """A worker of ``slot`` exited after ``lifetime`` seconds.

        ``crashed`` is False when the arbiter asked it to stop. Only a worker that reported ready
        and then lived ``backoff_reset`` seconds resets the slot's backoff: one that hung in boot
        for that long proved nothing.
        """
        now = self._clock()
        history = self._slots.setdefault(slot, _SlotHistory())
        if was_ready and lifetime >= self._settings.backoff_reset:
            history.consecutive_crashes = 0
        was_trial = self._trial_slot == slot
        if was_trial:
            self._trial_slot = None
        if not crashed:
            history.not_before = now
            return
        history.consecutive_crashes += 1
        history.not_before = now + self._backoff(history.consecutive_crashes)
        if was_ready:
            return  # it served: a request killed it, not a boot loop (backoff only)
        self._crash_times.append(now)
        self._prune(now)
        trial_failed = self._state is BreakerState.HALF_OPEN and was_trial
        too_many = len(self._crash_times) >= self._settings.breaker_threshold
        if trial_failed or (too_many and self._state is not BreakerState.OPEN):
            self._open(now)

    def record_ready(self, slot: int) -> None:
        """A worker of ``slot`` reported ready; the half-open trial doing so closes the breaker."""
        if self._state is BreakerState.HALF_OPEN and self._trial_slot == slot:
            self._state = BreakerState.CLOSED
            self._opened_at = None
            self._trial_slot = None
            self._crash_times.clear()

    def record_fork(self, slot: int) -> None:
        """A worker was forked into ``slot``; while half-open it is the trial."""
        if self._state is BreakerState.HALF_OPEN and self._trial_slot is None:
            self._trial_slot = slot

    def forget_slot(self, slot: int) -> None:
        """``slot`` no longer exists (scale-down): drop its history; a trial there is over."""
        self._slots.pop(slot, None)
        if self._trial_slot == slot:
            self._trial_slot = None

    # -- what the arbiter asks ------------------------------------------------------------------

    def may_fork(self) -> bool:
        """Whether a worker may be forked now; half-opens the breaker once the cool-down passed."""
        if self._state is BreakerState.OPEN:
            assert self._opened_at is not None  # set together with OPEN
            if self._clock() < self._opened_at + self._settings.breaker_cooldown:
                return False
            self._state = BreakerState.HALF_OPEN
            self._trial_slot = None
        if self._state is BreakerState.HALF_OPEN:
            return self._trial_slot is None
        return True

    def fork_delay(self, slot: int) -> float:
        """Seconds from now before ``slot`` may be re-forked (0.0 when it may be forked now)."""
        history = self._slots.get(slot)
        if history is None:
            return 0.0
        return max(0.0, history.not_before - self._clock())

    def next_wakeup(self) -> float | None:
        """Clock time at which ``may_fork()`` may change by itself (end of cool-down), or None."""
        if self._state is BreakerState.OPEN and self._opened_at is not None:
            return self._opened_at + self._settings.breaker_cooldown
        return None

    @property
    def settings(self) -> RestartSettings:
        """The settings this policy applies."""
        return self._settings

    @property
    def state(self) -> BreakerState:
        """The breaker's state as last moved (``may_fork()`` is what half-opens it)."""
        return self._state

    @property
    def opened_at(self) -> float | None:
        """Clock time the breaker last opened, or None while it is not open or half-open."""
        return self._opened_at

    @property
    def recent_crashes(self) -> int:
        """Crashes within the last ``breaker_window`` seconds."""
        self._prune(self._clock())
        return len(self._crash_times)

    def crash_budget_spent(self, booting: int) -> bool:
        """While workers are crashing, count the ``booting`` ones as crashes to come: a boot
        loop then forks at most ``breaker_threshold`` workers within the window, not the
        threshold plus however many were already on their way."""
        crashes = self.recent_crashes
        if not crashes or self.state is not BreakerState.CLOSED:
            return False  # half-open: the policy itself allows exactly one trial
        return crashes + booting >= self._settings.breaker_threshold

    @property
    def trial_slot(self) -> int | None:
        """The slot of the half-open trial worker in flight, if any."""
        return self._trial_slot

    # -- internals ------------------------------------------------------------------------------

    def _backoff(self, consecutive_crashes: int) -> float:
        """Delay before re-forking after the n-th consecutive crash: 0, base, 2*base, ... cap."""
        if consecutive_crashes <= 1:
            return 0.0
        base, cap = self._settings.backoff_base, self._settings.backoff_cap
        exponent = consecutive_crashes - 2
        if base == 0.0:
            return 0.0
        # 2.0**exponent overflows near 1024; once past the cap the exact power does not matter.
        if exponent >= 64:
            return cap
        return min(cap, base * 2.0**exponent)

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._trial_slot = None

    def _prune(self, now: float) -> None:
        horizon = now - self._settings.breaker_window
        while self._crash_times and self._crash_times[0] <= horizon:
            self._crash_times.popleft()

"""Unit tests for prefork.arbiter.supervision: every backoff and breaker transition, on a fake
clock."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import prefork.arbiter.supervision
from prefork.arbiter.supervision import (
    WORKER_TRANSITIONS,
    BreakerState,
    RestartPolicy,
    RestartSettings,
    WorkerState,
)
from prefork.errors import ConfigError

pytestmark = pytest.mark.timeout(10)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


SETTINGS = RestartSettings(
    backoff_base=0.5,
    backoff_cap=4.0,
    backoff_reset=30.0,
    breaker_threshold=3,
    breaker_window=60.0,
    breaker_cooldown=20.0,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def policy(clock: FakeClock) -> RestartPolicy:
    return RestartPolicy(SETTINGS, clock=clock)


def breaker(policy: RestartPolicy) -> BreakerState:
    """The breaker state, read through a call so the type checker does not narrow it."""
    return policy.state


def crash(policy: RestartPolicy, slot: int = 0, *, lifetime: float = 1.0,
          was_ready: bool = False) -> None:
    policy.record_exit(slot, crashed=True, lifetime=lifetime, was_ready=was_ready)


def open_breaker(policy: RestartPolicy) -> None:
    for slot in range(SETTINGS.breaker_threshold):
        crash(policy, slot)
    assert breaker(policy) is BreakerState.OPEN


# -- purity --------------------------------------------------------------------------------------


def test_module_imports_no_io() -> None:
    source = Path(prefork.arbiter.supervision.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "selectors", "threading", "os", "signal"}


# -- settings ------------------------------------------------------------------------------------


def test_default_settings_are_valid() -> None:
    settings = RestartSettings()
    assert settings.backoff_base == 0.5
    assert settings.breaker_threshold == 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"backoff_base": 2.0, "backoff_cap": 1.0},
            "restart_backoff_cap must be >= restart_backoff_base",
        ),
        ({"backoff_base": -1.0}, "restart_backoff_base must be >= 0"),
        ({"backoff_reset": float("nan")}, "restart_backoff_reset must be a finite number"),
        ({"breaker_threshold": 0}, "breaker_threshold must be >= 1"),
        ({"breaker_threshold": 2.5}, "breaker_threshold must be an integer"),
        ({"breaker_window": 0.0}, "breaker_window must be > 0"),
        ({"breaker_cooldown": -0.1}, "breaker_cooldown must be >= 0"),
        ({"backoff_cap": "3"}, "restart_backoff_cap must be a number"),
    ],
)
def test_bad_settings_name_the_setting(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RestartSettings(**changes)  # type: ignore[arg-type]  # wrong types on purpose


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS.backoff_base = 1.0  # type: ignore[misc]  # assigning a frozen field on purpose


# -- backoff -------------------------------------------------------------------------------------


def test_unknown_slot_may_fork_now(policy: RestartPolicy) -> None:
    assert policy.fork_delay(7) == 0.0


def test_backoff_sequence_doubles_up_to_cap(policy: RestartPolicy, clock: FakeClock) -> None:
    policy = RestartPolicy(dataclasses.replace(SETTINGS, breaker_threshold=100), clock=clock)
    delays = []
    for _ in range(7):
        crash(policy)
        delays.append(policy.fork_delay(0))
        clock.advance(policy.fork_delay(0))
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_fork_delay_counts_down_with_the_clock(policy: RestartPolicy, clock: FakeClock) -> None:
    crash(policy)
    crash(policy)
    assert policy.fork_delay(0) == 0.5
    clock.advance(0.2)
    assert policy.fork_delay(0) == pytest.approx(0.3)
    clock.advance(1.0)
    assert policy.fork_delay(0) == 0.0


def test_long_lived_worker_resets_backoff(policy: RestartPolicy) -> None:
    crash(policy)
    crash(policy)
    assert policy.fork_delay(0) == 0.5
    crash(policy, lifetime=SETTINGS.backoff_reset, was_ready=True)
    assert policy.fork_delay(0) == 0.0
    crash(policy)
    assert policy.fork_delay(0) == 0.5


def test_long_boot_without_ready_does_not_reset_backoff(policy: RestartPolicy) -> None:
    crash(policy)
    crash(policy)
    policy.record_exit(0, crashed=True, lifetime=1000.0, was_ready=False)
    assert policy.fork_delay(0) == 1.0


def test_slots_back_off_independently(clock: FakeClock) -> None:
    policy = RestartPolicy(dataclasses.replace(SETTINGS, breaker_threshold=100), clock=clock)
    crash(policy, 0)
    crash(policy, 0)
    crash(policy, 0)
    crash(policy, 1)
    assert policy.fork_delay(0) == 1.0
    assert policy.fork_delay(1) == 0.0
    assert policy.fork_delay(2) == 0.0


def test_graceful_exit_has_no_delay_and_keeps_the_count(policy: RestartPolicy) -> None:
    crash(policy)
    crash(policy)
    policy.record_exit(0, crashed=False, lifetime=1.0, was_ready=True)
    assert policy.fork_delay(0) == 0.0
    crash(policy)
    assert policy.fork_delay(0) == 1.0


def test_graceful_exit_after_long_life_resets(policy: RestartPolicy) -> None:
    crash(policy)
    crash(policy)
    policy.record_exit(0, crashed=False, lifetime=60.0, was_ready=True)
    crash(policy)
    assert policy.fork_delay(0) == 0.0


def test_forget_slot_drops_history(policy: RestartPolicy) -> None:
    crash(policy, 3)
    crash(policy, 3)
    assert policy.fork_delay(3) > 0.0
    policy.forget_slot(3)
    assert policy.fork_delay(3) == 0.0
    crash(policy, 3)
    assert policy.fork_delay(3) == 0.0
    policy.forget_slot(99)  # unknown slot: nothing to do


def test_zero_base_means_no_backoff(clock: FakeClock) -> None:
    settings = dataclasses.replace(SETTINGS, backoff_base=0.0, breaker_threshold=100)
    policy = RestartPolicy(settings, clock=clock)
    for _ in range(5):
        crash(policy)
    assert policy.fork_delay(0) == 0.0


def test_backoff_does_not_overflow_after_many_crashes(clock: FakeClock) -> None:
    settings = dataclasses.replace(SETTINGS, breaker_threshold=10_000)
    policy = RestartPolicy(settings, clock=clock)
    for _ in range(2000):
        crash(policy)
    assert policy.fork_delay(0) == SETTINGS.backoff_cap


# -- circuit breaker -----------------------------------------------------------------------------


def test_starts_closed(policy: RestartPolicy) -> None:
    assert breaker(policy) is BreakerState.CLOSED
    assert policy.may_fork()
    assert policy.opened_at is None
    assert policy.recent_crashes == 0
    assert policy.next_wakeup() is None


def test_threshold_crashes_in_window_open_the_breaker(
    policy: RestartPolicy, clock: FakeClock
) -> None:
    crash(policy, 0)
    clock.advance(10)
    crash(policy, 1)
    assert breaker(policy) is BreakerState.CLOSED
    assert policy.recent_crashes == 2
    clock.advance(10)
    crash(policy, 2)
    assert breaker(policy) is BreakerState.OPEN
    assert policy.opened_at == clock.now
    assert not policy.may_fork()
    assert policy.next_wakeup() == clock.now + SETTINGS.breaker_cooldown


def test_crashes_outside_the_window_do_not_count(policy: RestartPolicy, clock: FakeClock) -> None:
    crash(policy)
    crash(policy)
    clock.advance(SETTINGS.breaker_window)
    assert policy.recent_crashes == 0
    crash(policy)
    assert breaker(policy) is BreakerState.CLOSED
    assert policy.recent_crashes == 1


def test_graceful_exits_never_count(policy: RestartPolicy) -> None:
    for slot in range(10):
        policy.record_exit(slot, crashed=False, lifetime=0.1, was_ready=False)
    assert breaker(policy) is BreakerState.CLOSED
    assert policy.recent_crashes == 0


def test_boot_failures_count(policy: RestartPolicy) -> None:
    for _ in range(SETTINGS.breaker_threshold):
        policy.record_exit(0, crashed=True, lifetime=0.01, was_ready=False)
    assert breaker(policy) is BreakerState.OPEN


def test_open_half_opens_after_cooldown(policy: RestartPolicy, clock: FakeClock) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown - 0.01)
    assert not policy.may_fork()
    assert breaker(policy) is BreakerState.OPEN
    clock.advance(0.01)
    assert policy.may_fork()
    assert breaker(policy) is BreakerState.HALF_OPEN
    assert policy.next_wakeup() is None


def test_half_open_allows_exactly_one_trial(policy: RestartPolicy, clock: FakeClock) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown)
    assert policy.may_fork()
    assert policy.may_fork()  # asking twice forks nothing
    policy.record_fork(5)
    assert policy.trial_slot == 5
    assert not policy.may_fork()
    policy.record_fork(6)  # a fork the arbiter was not allowed: not a second trial
    assert policy.trial_slot == 5


def test_trial_ready_closes_and_clears_window(policy: RestartPolicy, clock: FakeClock) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown)
    assert policy.may_fork()
    policy.record_fork(0)
    policy.record_ready(1)  # not the trial
    assert breaker(policy) is BreakerState.HALF_OPEN
    policy.record_ready(0)
    assert breaker(policy) is BreakerState.CLOSED
    assert policy.opened_at is None
    assert policy.recent_crashes == 0
    assert policy.may_fork()
    crash(policy)  # one crash after closing does not reopen: the window was cleared
    assert breaker(policy) is BreakerState.CLOSED


def test_trial_crash_reopens_with_fresh_cooldown(policy: RestartPolicy, clock: FakeClock) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown)
    assert policy.may_fork()
    policy.record_fork(2)
    clock.advance(3)
    policy.record_exit(2, crashed=True, lifetime=3, was_ready=False)
    assert breaker(policy) is BreakerState.OPEN
    assert policy.opened_at == clock.now
    assert policy.trial_slot is None
    assert policy.next_wakeup() == clock.now + SETTINGS.breaker_cooldown
    clock.advance(SETTINGS.breaker_cooldown - 1)
    assert not policy.may_fork()
    clock.advance(1)
    assert policy.may_fork()
    assert breaker(policy) is BreakerState.HALF_OPEN


def test_trial_stopped_gracefully_allows_another_trial(
    policy: RestartPolicy, clock: FakeClock
) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown)
    assert policy.may_fork()
    policy.record_fork(1)
    policy.record_exit(1, crashed=False, lifetime=0.5, was_ready=False)
    assert breaker(policy) is BreakerState.HALF_OPEN
    assert policy.may_fork()


def test_forgetting_the_trial_slot_allows_another_trial(
    policy: RestartPolicy, clock: FakeClock
) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown)
    assert policy.may_fork()
    policy.record_fork(4)
    policy.forget_slot(4)
    assert policy.may_fork()


def test_crash_while_open_does_not_extend_cooldown(policy: RestartPolicy, clock: FakeClock) -> None:
    open_breaker(policy)
    opened = policy.opened_at
    clock.advance(5)
    crash(policy, 9)
    assert policy.opened_at == opened
    assert policy.recent_crashes == SETTINGS.breaker_threshold + 1


def test_fork_while_open_is_not_a_trial(policy: RestartPolicy) -> None:
    open_breaker(policy)
    policy.record_fork(0)
    assert policy.trial_slot is None


def test_ready_outside_half_open_changes_nothing(policy: RestartPolicy) -> None:
    policy.record_ready(0)
    assert breaker(policy) is BreakerState.CLOSED
    open_breaker(policy)
    policy.record_ready(0)
    assert breaker(policy) is BreakerState.OPEN


def test_zero_cooldown_half_opens_at_once(clock: FakeClock) -> None:
    policy = RestartPolicy(dataclasses.replace(SETTINGS, breaker_cooldown=0.0), clock=clock)
    open_breaker(policy)
    assert policy.may_fork()
    assert breaker(policy) is BreakerState.HALF_OPEN


def test_backoff_and_breaker_are_independent(policy: RestartPolicy, clock: FakeClock) -> None:
    crash(policy, 0)
    crash(policy, 0)
    assert policy.may_fork()
    assert policy.fork_delay(0) == 0.5
    crash(policy, 0)
    assert not policy.may_fork()
    assert policy.fork_delay(0) == 1.0


# -- worker states -------------------------------------------------------------------------------


def test_worker_transitions_cover_every_state() -> None:
    assert set(WORKER_TRANSITIONS) == set(WorkerState)
    assert WorkerState.SERVING in WORKER_TRANSITIONS[WorkerState.BOOTING]
    assert WorkerState.DRAINING in WORKER_TRANSITIONS[WorkerState.BOOTING]
    assert WORKER_TRANSITIONS[WorkerState.DRAINING] == frozenset()
    assert WorkerState.BOOTING not in WORKER_TRANSITIONS[WorkerState.SERVING]


# -- what counts towards the breaker -------------------------------------------------------------


def test_crashes_of_workers_that_served_never_open_the_breaker(
        policy: RestartPolicy, clock: FakeClock) -> None:
    for _ in range(10 * SETTINGS.breaker_threshold):
        crash(policy, was_ready=True)
        clock.advance(policy.fork_delay(0))
    assert breaker(policy) is BreakerState.CLOSED
    assert policy.recent_crashes == 0
    assert policy.may_fork()


def test_crashes_of_workers_that_served_still_back_off(policy: RestartPolicy) -> None:
    crash(policy, was_ready=True)
    assert policy.fork_delay(0) == 0.0
    crash(policy, was_ready=True)
    assert policy.fork_delay(0) == SETTINGS.backoff_base
    crash(policy, was_ready=True)
    assert policy.fork_delay(0) == 2 * SETTINGS.backoff_base


def test_boot_failures_among_served_crashes_still_open_the_breaker(policy: RestartPolicy) -> None:
    for slot in range(SETTINGS.breaker_threshold):
        crash(policy, slot, was_ready=True)
        crash(policy, slot)
    assert breaker(policy) is BreakerState.OPEN


def test_booting_workers_count_against_the_crash_budget(policy: RestartPolicy) -> None:
    assert not policy.crash_budget_spent(booting=10)  # no crash: booting is no sign of a loop
    crash(policy)
    assert not policy.crash_budget_spent(booting=1)  # 1 crash + 1 on its way < 3
    assert policy.crash_budget_spent(booting=2)  # 1 crash + 2 on their way reach 3


def test_a_half_open_breaker_leaves_the_trial_to_the_policy(
        policy: RestartPolicy, clock: FakeClock) -> None:
    open_breaker(policy)
    clock.advance(SETTINGS.breaker_cooldown + 1)
    assert policy.may_fork()
    assert breaker(policy) is BreakerState.HALF_OPEN
    assert not policy.crash_budget_spent(booting=5)

"""The fork of a worker leaves the arbiter's objects frozen, so that no collection in the arbiter
writes to the pages its workers share; a reload's collect_all collects them again."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator

import pytest

from prefork.arbiter.forking import collect_all, fork_worker

pytestmark = pytest.mark.timeout(10)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    try:
        yield
    finally:
        gc.unfreeze()


def fork_and_reap() -> None:
    pid = fork_worker(lambda: None, lambda: 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_arbiter_keeps_what_existed_at_the_fork_frozen(unfrozen_afterwards: None) -> None:
    gc.unfreeze()
    fork_and_reap()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    gc.collect()  # a full collection in the arbiter leaves them where they are
    assert gc.get_freeze_count() == frozen


def test_garbage_made_after_the_fork_is_still_collected(unfrozen_afterwards: None) -> None:
    fork_and_reap()
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None


def test_a_frozen_cycle_waits_for_collect_all(unfrozen_afterwards: None) -> None:
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    fork_and_reap()  # the cycle, garbage already, is frozen with everything else
    frozen = gc.get_freeze_count()
    gc.collect()
    assert gone() is not None
    collect_all()
    # unfrozen and collected; 3.12's collection moves the immortal objects it meets into the
    # permanent generation again (a few hundred), so the count is not zero there
    assert gone() is None and gc.get_freeze_count() < frozen // 4

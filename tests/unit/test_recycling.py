"""Unit tests for prefork.arbiter.recycling and prefork.workers.memory_check: lifetime and
memory limits, jitter drawn once per worker."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import prefork.arbiter.recycling
from prefork.arbiter.recycling import (
    MEMORY_SAMPLES_OVER,
    RecycleLimits,
    RecyclePolicy,
    WorkerFacts,
)
from prefork.config import Config
from prefork.system.procstat import MIB
from prefork.workers.memory_check import CHECK_EVERY_MAX, RequestMemoryCheck

pytestmark = pytest.mark.timeout(10)


def draws(*values: float) -> Iterator[float]:
    yield from values
    raise AssertionError("more jitter drawn than expected")


def policy(*values: float) -> RecyclePolicy:
    source = draws(*values)
    return RecyclePolicy(draw=lambda: next(source))


LIFETIME = RecycleLimits(max_lifetime=100.0, lifetime_jitter=20.0)
MEMORY = RecycleLimits(max_memory=400 * MIB, memory_jitter=100 * MIB)


def test_lifetime_limit_with_the_workers_own_jitter() -> None:
    recycler = policy(0.5, 0.0)  # lifetime share, memory share of the first worker
    assert recycler.review([WorkerFacts(1, 109.9, 0, 0.0)], LIFETIME) == []
    assert recycler.review([WorkerFacts(1, 110.0, 0, 0.0)], LIFETIME) == [
        (1, "lived 110s, limit 110s (max-worker-lifetime)")]


def test_jitter_is_drawn_once_per_worker_and_differs_between_workers() -> None:
    recycler = policy(0.0, 0.0, 1.0, 0.0)
    young = [WorkerFacts(1, 50.0, 0, 0.0), WorkerFacts(2, 50.0, 0, 0.0)]
    assert recycler.review(young, LIFETIME) == []
    for _ in range(5):  # no new draw for known workers: draws() would raise
        assert recycler.review(young, LIFETIME) == []
    at_105 = [WorkerFacts(1, 105.0, 0, 0.0), WorkerFacts(2, 105.0, 0, 0.0)]
    assert [pid for pid, _ in recycler.review(at_105, LIFETIME)] == [1]
    at_120 = [WorkerFacts(1, 120.0, 0, 0.0), WorkerFacts(2, 120.0, 0, 0.0)]
    assert [pid for pid, _ in recycler.review(at_120, LIFETIME)] == [1, 2]


def test_a_worker_left_out_is_forgotten() -> None:
    recycler = policy(1.0, 0.0, 0.0, 0.0)
    assert recycler.review([WorkerFacts(1, 10.0, 0, 0.0)], LIFETIME) == []
    assert recycler.review([], LIFETIME) == []
    # seen again (a pid reused by a new worker): a fresh draw, here 0.0
    assert recycler.review([WorkerFacts(1, 100.0, 0, 0.0)], LIFETIME) != []


def test_memory_needs_consecutive_new_samples_over_the_limit() -> None:
    recycler = policy(0.0, 0.5)  # memory limit 450 MB
    over, under = 451 * MIB, 449 * MIB
    assert recycler.review([WorkerFacts(7, 5.0, over, 1.0)], MEMORY) == []
    assert recycler.review([WorkerFacts(7, 5.1, over, 1.0)], MEMORY) == []  # same sample
    assert recycler.review([WorkerFacts(7, 6.0, over, 2.0)], MEMORY) == []
    assert recycler.review([WorkerFacts(7, 7.0, under, 3.0)], MEMORY) == []  # streak broken
    for sampled_at in (4.0, 5.0):
        assert recycler.review([WorkerFacts(7, sampled_at, over, sampled_at)], MEMORY) == []
    assert recycler.review([WorkerFacts(7, 6.0, 512 * MIB, 6.0)], MEMORY) == [
        (7, f"RSS 512 MB over 450 MB for {MEMORY_SAMPLES_OVER} samples (max-worker-memory)")]


def test_no_sample_yet_is_not_judged() -> None:
    recycler = policy(0.0, 0.0)
    for sampled_at in range(10):
        assert recycler.review([WorkerFacts(3, 1.0, 0, float(sampled_at))], MEMORY) == []


def test_lifetime_is_reported_before_memory() -> None:
    both = RecycleLimits(max_lifetime=10.0, max_memory=MIB)
    recycler = policy(0.0, 0.0)
    [(pid, reason)] = recycler.review([WorkerFacts(4, 11.0, 2 * MIB, 1.0)], both)
    assert pid == 4 and "max-worker-lifetime" in reason


def test_no_limits_no_decisions_and_no_draws() -> None:
    recycler = policy()
    assert recycler.review([WorkerFacts(1, 1e9, 1 << 40, 1.0)], RecycleLimits()) == []
    assert not RecycleLimits().enabled


def test_limits_from_config_are_in_megabytes() -> None:
    config = Config.from_mapping({"max_worker_memory": 256, "max_worker_memory_jitter": 32.5,
                                  "max_worker_lifetime": 3600, "max_worker_lifetime_jitter": 60})
    limits = RecycleLimits.from_config(config)
    assert limits == RecycleLimits(max_lifetime=3600.0, lifetime_jitter=60.0,
                                   max_memory=256 * MIB, memory_jitter=int(32.5 * MIB))
    assert limits.enabled


def test_the_module_is_pure() -> None:
    tree = ast.parse(Path(prefork.arbiter.recycling.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"os", "socket", "selectors", "asyncio", "threading", "time"}


def test_request_memory_check_reads_often_only_while_growth_could_reach_the_limit() -> None:
    steady = RequestMemoryCheck(200 * MIB)
    assert steady.due(1)
    assert steady.review(40 * MIB, 1) is None and steady.due(2)  # a second reading, for growth
    assert steady.review(40 * MIB, 2) is None  # no growth: the next reading 64 requests on
    assert not steady.due(1 + CHECK_EVERY_MAX) and steady.due(2 + CHECK_EVERY_MAX)

    growing = RequestMemoryCheck(200 * MIB)
    assert growing.review(40 * MIB, 1) is None
    assert growing.review(60 * MIB, 2) is None  # 20 MB a request, 140 MB left: 3 requests on
    assert not growing.due(4) and growing.due(5)
    assert growing.review(120 * MIB, 5) is None  # 80 MB left: 2 on
    assert not growing.due(6) and growing.due(7)
    assert growing.review(180 * MIB, 7) is None  # 20 MB left: the next request
    assert growing.due(8)
    reason = growing.review(201 * MIB, 8)
    assert reason is not None and "RSS 201 MB over 200 MB after request 8" in reason
